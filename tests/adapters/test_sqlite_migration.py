"""A data folder an earlier version made opens with today's words: its holds were posted or voided, and are now
settled or released, their amounts kept; none of them was split (nothing `split_off`); its accounts learn their
last paid top-up from their lots; its answers kept for replays were kept after their charge."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from creditflow.adapters.local.answers import SqliteAnswers
from creditflow.adapters.local.sqlite_store import SqliteLedgerStore
from creditflow.domain.answers import Answer, AnswerCharge

EARLIER_HOLDS = """CREATE TABLE holds (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, target TEXT NOT NULL, amount INTEGER NOT NULL,
    allocations TEXT NOT NULL, status TEXT NOT NULL, posted INTEGER NOT NULL, expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL, closed_at TEXT, replaced_by TEXT, owner TEXT NOT NULL DEFAULT 'client') WITHOUT ROWID"""
EARLIER_ACCOUNTS = """CREATE TABLE accounts (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, available INTEGER NOT NULL, held INTEGER NOT NULL,
    seq INTEGER NOT NULL, head TEXT NOT NULL, version INTEGER NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL) WITHOUT ROWID"""
EARLIER_ANSWERS = """CREATE TABLE answers (uid TEXT NOT NULL, key TEXT NOT NULL, request TEXT NOT NULL,
    reply BLOB NOT NULL, at TEXT NOT NULL, expires_at TEXT NOT NULL, PRIMARY KEY (uid, key)) WITHOUT ROWID"""
T = "2026-01-01T00:00:00.000000Z"
LATER = "2026-01-02T00:00:00.000000Z"


def test_posted_and_voided_holds_are_read_as_settled_and_released(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(EARLIER_HOLDS)
        db.executemany("INSERT INTO holds VALUES (?, 'user:u', 'usage:chat', 10, '[]', ?, ?, ?, ?, ?, NULL, 'client')",
                       [("h1", "posted", 7, T, T, T), ("h2", "voided", 0, T, T, T), ("h3", "pending", 0, T, T, None)])
    store = SqliteLedgerStore(path)
    held = {h: store.hold("user:u", h) for h in ("h1", "h2", "h3")}
    assert {h: (hold.status, hold.settled) for h, hold in held.items() if hold} == {
        "h1": ("settled", 7), "h2": ("released", 0), "h3": ("pending", 0)}
    assert all(hold.split_off == 0 for hold in held.values() if hold)
    SqliteLedgerStore(path)  # a second opening finds nothing left to change
    assert store.hold("user:u", "h1").settled == 7  # type: ignore[union-attr]


def test_accounts_learn_their_last_paid_top_up_from_their_lots(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    SqliteLedgerStore(path).close()  # today's lots table, then the accounts table as it was
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE accounts")
        db.execute(EARLIER_ACCOUNTS)
        db.executemany("INSERT INTO accounts VALUES (?, 'open', 0, 0, 3, ?, 3, ?, ?)",
                       [(f"user:{uid}", "0" * 64, T, T) for uid in ("paid", "promo", "none")])
        lots = [("l1", "user:paid", "paid", 100, 1), ("l2", "user:paid", "paid", 40, 2),  # the latest counts,
                ("l3", "user:paid", "promotional", 500, 3), ("l4", "user:promo", "promotional", 9, 1)]  # paid only
        db.executemany("INSERT INTO lots VALUES (?, ?, ?, ?, 0, 0, 0, NULL, ?, ?, 'admin', 0)",
                       [(lot, account, kind, granted, T, seq) for lot, account, kind, granted, seq in lots])
    store = SqliteLedgerStore(path)
    assert {uid: store.account(f"user:{uid}").last_top_up for uid in ("paid", "promo", "none")} == {  # type: ignore[union-attr]
        "paid": 40, "promo": 0, "none": 0}


def test_answers_kept_before_are_read_as_charged_and_new_ones_keep_their_charge(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(EARLIER_ANSWERS)
        db.execute("INSERT INTO answers VALUES ('u', 'k1', 'd1', ?, ?, ?)",
                   (b'{"text": "hi", "entry": "e1"}', T, LATER))
    answers = SqliteAnswers(path)
    assert answers.find("u", "k1", T) == Answer("u", "k1", "d1", {"text": "hi", "entry": "e1"}, T, LATER, None)
    charge = AnswerCharge("h1", 5, "k2:settle", {"model": "m"})
    answers.keep(Answer("u", "k2", "d2", {"text": "yo"}, T, LATER, charge))
    assert SqliteAnswers(path).find("u", "k2", T).charge == charge  # opened again: nothing altered twice
