"""The embedded ledger's tables."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, available INTEGER NOT NULL, held INTEGER NOT NULL,
    seq INTEGER NOT NULL, head TEXT NOT NULL, version INTEGER NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS system_accounts (
    id TEXT PRIMARY KEY, balance INTEGER NOT NULL, pending INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL,
    body BLOB NOT NULL, hash TEXT NOT NULL, signature TEXT NOT NULL, key_id TEXT NOT NULL, leaf INTEGER,
    UNIQUE (account, seq));
CREATE INDEX IF NOT EXISTS entries_unsequenced ON entries (leaf) WHERE leaf IS NULL;
CREATE TABLE IF NOT EXISTS lots (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, kind TEXT NOT NULL, granted INTEGER NOT NULL,
    remaining INTEGER NOT NULL, held INTEGER NOT NULL, priority INTEGER NOT NULL, expires_at TEXT,
    created_at TEXT NOT NULL, created_seq INTEGER NOT NULL, source TEXT NOT NULL, open INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS lots_open ON lots (account) WHERE open = 1;
CREATE INDEX IF NOT EXISTS lots_expiring ON lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS holds (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, target TEXT NOT NULL, amount INTEGER NOT NULL,
    allocations TEXT NOT NULL, status TEXT NOT NULL, posted INTEGER NOT NULL, expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL, closed_at TEXT, replaced_by TEXT);
CREATE INDEX IF NOT EXISTS holds_pending ON holds (account) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS holds_expiring ON holds (expires_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, command TEXT NOT NULL, request TEXT NOT NULL, result TEXT NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (scope, key));
CREATE TABLE IF NOT EXISTS idempotency_conflicts (
    n INTEGER PRIMARY KEY, scope TEXT NOT NULL, key TEXT NOT NULL, command TEXT NOT NULL, field TEXT NOT NULL,
    at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leaves (idx INTEGER PRIMARY KEY, entry_id TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL, key_id TEXT NOT NULL,
    created_at TEXT NOT NULL);
"""
