"""The Firestore ledger's expiry index (in each account document) stands in for the sweep's queries: expired holds
and lots are still found when it is there, when it was lost, and when it was never written."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from creditflow.adapters.firebase import firestore_layout as layout
from creditflow.adapters.firebase.firestore_store import FirestoreLedgerStore
from creditflow.bootstrap import Platform, build
from creditflow.config import Settings
from tests.conftest import CREDIT, SteppedClock


@pytest.fixture
def on_firestore(firestore_client: Any, tmp_path: Path, clock: SteppedClock) -> Platform:
    return build(Settings.from_env(runtime="local", data_dir=tmp_path / "keys"), clock=clock,
                 store=FirestoreLedgerStore(firestore_client))


def _index(platform: Platform, uid: str) -> dict[str, Any] | None:
    snapshot = platform.store.client.collection(layout.ACCOUNTS).document(f"user:{uid}").get()  # type: ignore[attr-defined]
    return snapshot.get(layout.EXPIRING) if layout.EXPIRING in snapshot.to_dict() else None


@pytest.mark.parametrize("lose_index", [False, True])
def test_expired_holds_and_lots_are_swept_with_or_without_the_index(
        on_firestore: Platform, clock: SteppedClock, lose_index: bool) -> None:
    credits = on_firestore.credits
    credits.open_account("u")
    credits.grant("u", 3 * CREDIT, source="welcome", lot_kind="promotional", key="w",
                  expires_at=clock.now() + timedelta(hours=2))
    credits.grant("u", 4 * CREDIT, source="admin", lot_kind="paid", key="p")
    hold = credits.reserve("u", 2 * CREDIT, key="r", ttl=timedelta(minutes=30))
    index = _index(on_firestore, "u")
    assert index is not None and list(index["holds"]) == [hold.hold] and len(index["lots"]) == 1
    if lose_index:  # an account document written before the index existed
        on_firestore.store.client.collection(layout.ACCOUNTS).document("user:u").update(  # type: ignore[attr-defined]
            {layout.EXPIRING: layout_delete()})
        assert _index(on_firestore, "u") is None
    clock.advance(hours=1)  # the hold has expired, the promotional lot not yet
    credits.grant("u", CREDIT, source="admin", lot_kind="paid", key="p2")  # any command sweeps first
    assert credits.store.hold("user:u", hold.hold).status == "released"
    assert _index(on_firestore, "u") is not None and not _index(on_firestore, "u")["holds"]
    balance = credits.balance("u")
    assert (balance.available, balance.held) == (8 * CREDIT, 0)
    clock.advance(hours=2)  # now the promotional lot has expired too (1 credit of it was held, then returned)
    credits.reserve("u", CREDIT, key="r2")
    swept = [(e.kind, e.fields().get("reason"), e.fields()["amount"]) for e in credits.history("u")[0]
             if e.fields()["key"].startswith("expire:")]
    assert swept == [("expire", None, str(3 * CREDIT)), ("release", "expired", str(2 * CREDIT))]
    balance = credits.balance("u")
    assert (balance.available, balance.held) == (4 * CREDIT, CREDIT)
    assert on_firestore.integrity.audit().ok


def layout_delete() -> Any:
    from google.cloud import firestore

    return firestore.DELETE_FIELD
