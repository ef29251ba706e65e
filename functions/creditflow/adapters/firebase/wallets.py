"""Linked wallets and their sign-in nonces on Firestore: wallets/{address}, wallet_challenges/{nonce}. A nonce never
taken would stay for good (any user may ask for one as often as the rate limit lets them): each carries its expiry as
a timestamp, `expiresAt`, by which a TTL policy (firestore.indexes.json) deletes it."""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ...domain.crypto import Wallet, WalletChallenge
from ...domain.timefmt import parse_iso
from .firestore_layout import document_fields, may_name_document
from .firestore_transactions import run_transaction

EXPIRES = "expiresAt"  # a timestamp, as TTL policies need


class FirestoreWallets:
    def __init__(self, client: firestore.Client) -> None:
        self.client = client
        self.wallets = client.collection("wallets")
        self.challenges = client.collection("wallet_challenges")

    def keep_challenge(self, challenge: WalletChallenge) -> None:
        self.challenges.document(challenge.nonce).create({**asdict(challenge),
                                                          EXPIRES: parse_iso(challenge.expires_at)})

    def take_challenge(self, nonce: str, uid: str) -> WalletChallenge | None:
        if not may_name_document(nonce):  # the caller's text: a nonce this store never gave
            return None
        ref = self.challenges.document(nonce)

        def take(tx: Any) -> WalletChallenge | None:
            snapshot = ref.get(transaction=tx)
            if not snapshot.exists:
                return None
            fields = document_fields(snapshot)
            fields.pop(EXPIRES, None)
            challenge = WalletChallenge(**fields)
            if challenge.uid == uid:  # another user's is read, not taken
                tx.delete(ref)
            return challenge

        return run_transaction(self.client, take)

    def link(self, wallet: Wallet) -> Wallet:
        with contextlib.suppress(AlreadyExists):  # linked already (maybe to another user): that link stays
            self.wallets.document(wallet.address).create(asdict(wallet))
        kept = self.owner(wallet.address)
        assert kept is not None
        return kept

    def unlink(self, address: str, uid: str) -> bool:
        ref = self.wallets.document(address)

        def remove(tx: Any) -> bool:
            snapshot = ref.get(transaction=tx)
            if not snapshot.exists or document_fields(snapshot)["uid"] != uid:
                return False
            tx.delete(ref)
            return True

        return run_transaction(self.client, remove)

    def owner(self, address: str) -> Wallet | None:
        if not may_name_document(address):  # the caller's text: no address linked here
            return None
        snapshot = self.wallets.document(address).get()
        return Wallet(**document_fields(snapshot)) if snapshot.exists else None

    def of_user(self, uid: str) -> list[Wallet]:
        found = [Wallet(**document_fields(s)) for s in self.wallets.where(filter=FieldFilter("uid", "==", uid))
                 .stream()]
        return sorted(found, key=lambda w: (w.linked_at, w.address))
