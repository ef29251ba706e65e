"""The embedded ledger's tables. Each money movement touches few b-trees: every page it dirties is WAL I/O."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, available INTEGER NOT NULL, held INTEGER NOT NULL,
    seq INTEGER NOT NULL, head TEXT NOT NULL, version INTEGER NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS system_accounts (
    id TEXT PRIMARY KEY, balance INTEGER NOT NULL, pending INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL,
    body BLOB NOT NULL, hash TEXT NOT NULL, signature TEXT NOT NULL, key_id TEXT NOT NULL, leaf INTEGER,
    UNIQUE (account, seq));
CREATE TABLE IF NOT EXISTS lots (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, kind TEXT NOT NULL, granted INTEGER NOT NULL,
    remaining INTEGER NOT NULL, held INTEGER NOT NULL, priority INTEGER NOT NULL, expires_at TEXT,
    created_at TEXT NOT NULL, created_seq INTEGER NOT NULL, source TEXT NOT NULL, open INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS lots_open ON lots (account, priority, coalesce(expires_at, '9999-12-31T23:59:59.999999Z'),
    kind = 'paid', created_at, created_seq) WHERE open = 1;
CREATE INDEX IF NOT EXISTS lots_expiring ON lots (account, expires_at) WHERE open = 1 AND expires_at IS NOT NULL;
-- the sweeper's: lots past their date across accounts, without a scan of every lot that will expire some day
CREATE INDEX IF NOT EXISTS lots_due ON lots (expires_at, account) WHERE open = 1 AND expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS holds (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, target TEXT NOT NULL, amount INTEGER NOT NULL,
    allocations TEXT NOT NULL, status TEXT NOT NULL, posted INTEGER NOT NULL, expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL, closed_at TEXT, replaced_by TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS holds_pending ON holds (account, expires_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, command TEXT NOT NULL, request TEXT NOT NULL, result TEXT NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (scope, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency_conflicts (
    n INTEGER PRIMARY KEY, scope TEXT NOT NULL, key TEXT NOT NULL, command TEXT NOT NULL, field TEXT NOT NULL,
    at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leaves (idx INTEGER PRIMARY KEY, entry_id TEXT NOT NULL, data BLOB NOT NULL,
    entry_rowid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS subtrees (level INTEGER NOT NULL, start INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL, key_id TEXT NOT NULL,
    created_at TEXT NOT NULL);
"""
