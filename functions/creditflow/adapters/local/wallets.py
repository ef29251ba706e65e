"""Linked wallets and their sign-in nonces on SQLite."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from ...domain.crypto import Wallet, WalletChallenge
from .sqlite_connections import SqliteFile


class SqliteWallets(SqliteFile):
    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            "CREATE TABLE IF NOT EXISTS wallets (address TEXT PRIMARY KEY, uid TEXT NOT NULL, chain_id INTEGER "
            "NOT NULL, linked_at TEXT NOT NULL) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS wallets_by_user ON wallets (uid, linked_at)",
            "CREATE TABLE IF NOT EXISTS wallet_challenges (nonce TEXT PRIMARY KEY, expires_at TEXT NOT NULL, "
            "doc TEXT NOT NULL) WITHOUT ROWID")

    def keep_challenge(self, challenge: WalletChallenge) -> None:
        with self._connections.transaction() as db:  # expired ones go as new ones come
            db.execute("DELETE FROM wallet_challenges WHERE expires_at < ?", (challenge.issued_at,))
            db.execute("INSERT INTO wallet_challenges VALUES (?, ?, ?)",
                       (challenge.nonce, challenge.expires_at, json.dumps(asdict(challenge))))

    def take_challenge(self, nonce: str, uid: str) -> WalletChallenge | None:
        row = self.db.execute("DELETE FROM wallet_challenges WHERE nonce = ? AND json_extract(doc, '$.uid') = ? "
                              "RETURNING doc", (nonce, uid)).fetchone()
        if row is None:  # none, or another user's: read, not taken
            row = self.db.execute("SELECT doc FROM wallet_challenges WHERE nonce = ?", (nonce,)).fetchone()
        return WalletChallenge(**json.loads(row[0])) if row else None

    def link(self, wallet: Wallet) -> Wallet:
        self.db.execute("INSERT OR IGNORE INTO wallets VALUES (?, ?, ?, ?)",
                        (wallet.address, wallet.uid, wallet.chain_id, wallet.linked_at))
        kept = self.owner(wallet.address)
        assert kept is not None
        return kept

    def unlink(self, address: str, uid: str) -> bool:
        return self.db.execute("DELETE FROM wallets WHERE address = ? AND uid = ?", (address, uid)).rowcount > 0

    def owner(self, address: str) -> Wallet | None:
        row = self.db.execute("SELECT address, uid, chain_id, linked_at FROM wallets WHERE address = ?",
                              (address,)).fetchone()
        return Wallet(*row) if row else None

    def of_user(self, uid: str) -> list[Wallet]:
        rows = self.db.execute("SELECT address, uid, chain_id, linked_at FROM wallets WHERE uid = ? "
                               "ORDER BY linked_at, address", (uid,))
        return [Wallet(*row) for row in rows]
