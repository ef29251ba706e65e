"""The embedded ledger's tables. Each money movement touches few b-trees: every page it dirties is WAL I/O."""

import sqlite3

LOTS_KEY = "PRIMARY KEY (account, id)"  # an account's lots side by side: the audit reads them all, account by account
LOTS_TABLE = f"""CREATE TABLE IF NOT EXISTS lots (
    id TEXT NOT NULL, account TEXT NOT NULL, kind TEXT NOT NULL, granted INTEGER NOT NULL,
    remaining INTEGER NOT NULL, held INTEGER NOT NULL, priority INTEGER NOT NULL, expires_at TEXT,
    created_at TEXT NOT NULL, created_seq INTEGER NOT NULL, source TEXT NOT NULL, open INTEGER NOT NULL,
    {LOTS_KEY}) WITHOUT ROWID;
"""
SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, available INTEGER NOT NULL, held INTEGER NOT NULL,
    seq INTEGER NOT NULL, head TEXT NOT NULL, version INTEGER NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, last_top_up INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS system_accounts (
    id TEXT PRIMARY KEY, balance INTEGER NOT NULL, pending INTEGER NOT NULL) WITHOUT ROWID;
-- a sum past 64 bits is a REAL to SQLite: refused, so that the transaction moving it rolls back whole
CREATE TRIGGER IF NOT EXISTS system_totals_fit BEFORE UPDATE ON system_accounts
    WHEN typeof(NEW.balance) != 'integer' OR typeof(NEW.pending) != 'integer'
    BEGIN SELECT RAISE(ABORT, 'system total beyond 64 bits'); END;
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL,
    body BLOB NOT NULL, hash TEXT NOT NULL, signature TEXT NOT NULL, key_id TEXT NOT NULL, leaf INTEGER,
    UNIQUE (account, seq));
""" + LOTS_TABLE + """
CREATE INDEX IF NOT EXISTS lots_open ON lots (account, priority, coalesce(expires_at, '9999-12-31T23:59:59.999999Z'),
    kind = 'paid', created_at, created_seq) WHERE open = 1;
CREATE INDEX IF NOT EXISTS lots_expiring ON lots (account, expires_at) WHERE open = 1 AND expires_at IS NOT NULL;
-- the sweeper's: lots past their date across accounts, without a scan of every lot that will expire some day
CREATE INDEX IF NOT EXISTS lots_due ON lots (expires_at, account) WHERE open = 1 AND expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS holds (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, target TEXT NOT NULL, amount INTEGER NOT NULL,
    allocations TEXT NOT NULL, status TEXT NOT NULL, settled INTEGER NOT NULL, expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL, closed_at TEXT, replaced_by TEXT, owner TEXT NOT NULL DEFAULT 'client',
    split_off INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS holds_pending ON holds (account, expires_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, command TEXT NOT NULL, request TEXT NOT NULL, result TEXT NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (scope, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency_conflicts (
    n INTEGER PRIMARY KEY, scope TEXT NOT NULL, key TEXT NOT NULL, command TEXT NOT NULL, field TEXT NOT NULL,
    at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idempotency_conflicts_by_scope ON idempotency_conflicts (scope, n);
CREATE TABLE IF NOT EXISTS shortfalls (
    account TEXT NOT NULL, key TEXT NOT NULL, reference TEXT NOT NULL, owed INTEGER NOT NULL,
    collected INTEGER NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (account, key));
CREATE INDEX IF NOT EXISTS shortfalls_by_time ON shortfalls (at);
CREATE TABLE IF NOT EXISTS outbox (n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    uid TEXT NOT NULL, payload BLOB NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leaves (idx INTEGER PRIMARY KEY, entry_id TEXT NOT NULL, data BLOB NOT NULL,
    entry_rowid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS subtrees (level INTEGER NOT NULL, start INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL, key_id TEXT NOT NULL,
    created_at TEXT NOT NULL);
"""


def migrate(db: sqlite3.Connection) -> None:
    """Bring a data folder an earlier version made up to SCHEMA, in one transaction (before SCHEMA runs): lots were
    keyed by id alone, so reading an account's lots scanned every lot; holds had no owner (all were the client's:
    calls' holds placed before owners existed have ended long since, by settle or by the sweeper), and were
    "posted" or "voided"; and none had been split (`split_off`); accounts did not keep their last paid top-up
    (`last_top_up`, the amount of their latest paid lot)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'lots'").fetchone()
        if row is not None and LOTS_KEY not in row[0]:
            for index in ("lots_open", "lots_expiring", "lots_due"):
                db.execute(f"DROP INDEX IF EXISTS {index}")
            db.execute("ALTER TABLE lots RENAME TO lots_before")
            db.execute(LOTS_TABLE)
            db.execute("INSERT INTO lots SELECT * FROM lots_before")
            db.execute("DROP TABLE lots_before")
        holds = [row[1] for row in db.execute("PRAGMA table_info(holds)")]
        if holds and "owner" not in holds:
            db.execute("ALTER TABLE holds ADD COLUMN owner TEXT NOT NULL DEFAULT 'client'")
        if holds and "split_off" not in holds:
            db.execute("ALTER TABLE holds ADD COLUMN split_off INTEGER NOT NULL DEFAULT 0")
        if "posted" in holds:  # the words of an earlier version
            db.execute("ALTER TABLE holds RENAME COLUMN posted TO settled")
            db.execute("UPDATE holds SET status = CASE status WHEN 'posted' THEN 'settled' ELSE 'released' END "
                       "WHERE status IN ('posted', 'voided')")
        accounts = [row[1] for row in db.execute("PRAGMA table_info(accounts)")]
        if accounts and "last_top_up" not in accounts:
            db.execute("ALTER TABLE accounts ADD COLUMN last_top_up INTEGER NOT NULL DEFAULT 0")
            db.execute("UPDATE accounts SET last_top_up = coalesce((SELECT granted FROM lots WHERE lots.account = "
                       "accounts.id AND kind = 'paid' ORDER BY created_seq DESC LIMIT 1), 0)")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
