"""The Firebase composition root on Google's Firestore emulator: bootstrap picks the Firestore ledger and user
stores from the environment (FIRESTORE_EMULATOR_HOST, GCLOUD_PROJECT) as a deployed function does."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform, build
from creditflow.config import Settings
from creditflow.domain.callers import Caller
from creditflow.domain.conversations import Conversation
from tests.conftest import CREDIT
from tests.firestore_emulator import FirestoreEmulator


@pytest.fixture
def on_firebase(firestore_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch,
                tmp_path: Path) -> Iterator[tuple[Platform, str]]:
    import firebase_admin

    project = firestore_emulator.project()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    monkeypatch.setenv("GCLOUD_PROJECT", project)
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", "127.0.0.1:9")  # never called: the trigger mirrors
    before = set(firebase_admin._apps)
    try:
        yield build(Settings.from_env(runtime="firebase", data_dir=tmp_path,
                                      signing_key=base64.b64encode(bytes(range(32))).decode())), project
    finally:
        for name in set(firebase_admin._apps) - before:  # leave firebase-admin as other tests expect it
            firebase_admin.delete_app(firebase_admin._apps[name])


def test_the_firebase_runtime_keeps_everything_in_firestore(on_firebase: tuple[Platform, str],
                                                            firestore_emulator: FirestoreEmulator) -> None:
    platform, project = on_firebase
    granted = platform.welcome.claim(Caller(uid="ana", email_verified=True), device="phone", ip="192.0.2.7")
    hold = platform.credits.reserve("ana", 2 * CREDIT, key="r1")
    platform.credits.settle("ana", hold.hold, CREDIT, key="s1")
    platform.conversations.store.create(Conversation(id="conv_1", uid="ana", title="t", created_at="2026-01-01",
                                                     updated_at="2026-01-01"))
    assert platform.credits.balance("ana").available == granted.granted - CREDIT
    seen = firestore_emulator.client(project)  # another client on the same project sees it all
    assert seen.collection("accounts").document("user:ana").get().get("available") == granted.granted - CREDIT
    assert {c.id for c in seen.collections()} >= {"accounts", "holds", "lots", "idempotency", "welcome_devices",
                                                  "welcome_ips", "conversations"}
    assert platform.integrity.audit().ok


def test_a_kill_right_after_a_charge_leaves_the_usage_rollups_right(on_firebase: tuple[Platform, str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The rollups were an after-commit observer's second transaction: a process killed between the charge's commit
    and it left the day uncounted until an admin rebuilt them. Now the charge's own transaction counts it, once."""
    from creditflow.services.credits import Credits

    platform, _ = on_firebase
    platform.credits.open_account("kim")
    platform.credits.grant("kim", 5 * CREDIT, source="admin", lot_kind="paid", key="g")
    hold = platform.credits.reserve("kim", 2 * CREDIT, key="r1")
    platform.credits.settle("kim", hold.hold, CREDIT, key="s1", memo={"model": "m1"})  # a process that lives on
    other = platform.credits.reserve("kim", CREDIT, key="r2")

    def killed(self: Credits, account: object, entries: object) -> None:
        raise SystemExit("killed between the commit and its observers")

    monkeypatch.setattr(Credits, "_committed", killed)
    with pytest.raises(SystemExit):
        platform.credits.settle("kim", other.hold, CREDIT // 2, key="s2", memo={"model": "m1"})
    monkeypatch.undo()
    assert platform.credits.balance("kim").available == 5 * CREDIT - CREDIT - CREDIT // 2  # it was committed
    assert platform.usage is not None
    day = platform.clock.now().date().isoformat()
    usage = platform.usage.read(day, day, by="model")
    assert (usage.charged, usage.settles, usage.groups) == (CREDIT + CREDIT // 2, 2, {"m1": CREDIT + CREDIT // 2})
    assert not platform.usage.check(platform.store)  # nothing for an admin to rebuild
    assert platform.integrity.audit().ok
