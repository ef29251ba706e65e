"""Payments, handled provider events, customer ids and auto top-up settings on SQLite."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from ...domain.payments import AutoTopUp, Payment
from .sqlite_connections import SqliteFile


class SqlitePayments(SqliteFile):
    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            "CREATE TABLE IF NOT EXISTS payments (id TEXT PRIMARY KEY, uid TEXT NOT NULL, payment_intent TEXT, "
            "created_at TEXT NOT NULL, doc TEXT NOT NULL) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS payments_by_user ON payments (uid, created_at DESC)",
            "CREATE INDEX IF NOT EXISTS payments_by_intent ON payments (payment_intent)",
            "CREATE TABLE IF NOT EXISTS payment_events (id TEXT PRIMARY KEY, kind TEXT NOT NULL, at TEXT NOT NULL) "
            "WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS payment_customers (uid TEXT PRIMARY KEY, customer TEXT NOT NULL) "
            "WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS auto_top_ups (uid TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS payment_leases (id TEXT PRIMARY KEY, holder TEXT NOT NULL, until REAL NOT "
            "NULL) WITHOUT ROWID")

    def payment(self, payment_id: str) -> Payment | None:
        row = self.db.execute("SELECT doc FROM payments WHERE id = ?", (payment_id,)).fetchone()
        return Payment(**json.loads(row[0])) if row else None

    def by_intent(self, payment_intent: str) -> Payment | None:
        row = self.db.execute("SELECT doc FROM payments WHERE payment_intent = ?", (payment_intent,)).fetchone()
        return Payment(**json.loads(row[0])) if row else None

    def save(self, payment: Payment) -> None:
        self.db.execute("INSERT OR REPLACE INTO payments VALUES (?, ?, ?, ?, ?)",
                        (payment.id, payment.uid, payment.payment_intent, payment.created_at,
                         json.dumps(asdict(payment))))

    def of_user(self, uid: str, limit: int) -> list[Payment]:
        rows = self.db.execute("SELECT doc FROM payments WHERE uid = ? ORDER BY created_at DESC, id DESC LIMIT ?",
                               (uid, limit))
        return [Payment(**json.loads(doc)) for (doc,) in rows]

    def all(self, limit: int) -> list[Payment]:
        rows = self.db.execute("SELECT doc FROM payments ORDER BY created_at DESC, id DESC LIMIT ?", (limit,))
        return [Payment(**json.loads(doc)) for (doc,) in rows]

    def handled(self, event_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM payment_events WHERE id = ?", (event_id,)).fetchone() is not None

    def mark_handled(self, event_id: str, kind: str, at: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO payment_events VALUES (?, ?, ?)", (event_id, kind, at))

    def customer(self, uid: str) -> str | None:
        row = self.db.execute("SELECT customer FROM payment_customers WHERE uid = ?", (uid,)).fetchone()
        return row[0] if row else None

    def keep_customer(self, uid: str, customer: str) -> str:
        self.db.execute("INSERT OR IGNORE INTO payment_customers VALUES (?, ?)", (uid, customer))
        kept = self.customer(uid)
        assert kept is not None
        return kept

    def auto_top_up(self, uid: str) -> AutoTopUp | None:
        row = self.db.execute("SELECT doc FROM auto_top_ups WHERE uid = ?", (uid,)).fetchone()
        return AutoTopUp(**json.loads(row[0])) if row else None

    def save_auto_top_up(self, settings: AutoTopUp) -> None:
        self.db.execute("INSERT OR REPLACE INTO auto_top_ups VALUES (?, ?)", (settings.uid,
                                                                            json.dumps(asdict(settings))))

    def take_lease(self, payment_id: str, holder: str, until: float) -> bool:
        now = time.time()
        taken = self.db.execute("INSERT INTO payment_leases VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                                "holder = excluded.holder, until = excluded.until WHERE payment_leases.until < ? OR "
                                "payment_leases.holder = excluded.holder", (payment_id, holder, until, now))
        return taken.rowcount > 0

    def end_lease(self, payment_id: str, holder: str) -> None:
        self.db.execute("DELETE FROM payment_leases WHERE id = ? AND holder = ?", (payment_id, holder))
