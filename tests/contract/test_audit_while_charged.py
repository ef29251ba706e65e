"""An audit of a ledger that users are being charged on, on SQLite and on Google's Firestore emulator: it reads the
ledger as of one moment, so a charge that commits between two of its reads is either wholly in what it checks or
wholly out of it, and it reports nothing wrong with a sound ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from creditflow.bootstrap import Platform
from tests.conftest import CREDIT
from tests.contract.charging import charge_on_another_thread


def test_an_audit_while_users_are_charged_finds_nothing_wrong(on_store: Platform,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Charges commit at each step of an audit: after it listed the accounts, before it reads each account's chain
    and lots, before it reads the system accounts and before it reads the Merkle log."""
    platform = on_store
    for uid in ("ann", "bob"):
        platform.credits.open_account(uid)
        platform.credits.grant(uid, 50 * CREDIT, source="admin", lot_kind="paid", key=f"g-{uid}")
    platform.integrity.publish_checkpoint()
    store: Any = platform.store
    accounts, chain, lots_of = store.user_accounts, store.chain, store.lots_of
    system_totals, tree_size = store.system_totals, store.tree_size
    steps: list[str] = []

    def charged_after(name: str, uid: str, read: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any) -> Any:
            found = read(*args)
            found = list(found) if isinstance(found, Iterator) else found
            steps.append(name)
            charge_on_another_thread(platform, uid, f"{name}-{len(steps)}")
            return found
        return step

    def charged_before(name: str, uid: str, read: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any) -> Any:
            steps.append(name)
            charge_on_another_thread(platform, uid, f"{name}-{len(steps)}")
            return read(*args)
        return step

    monkeypatch.setattr(store, "user_accounts", charged_after("accounts", "ann", accounts))
    monkeypatch.setattr(store, "chain", charged_before("chain", "bob", chain))
    monkeypatch.setattr(store, "lots_of", charged_before("lots", "ann", lots_of))
    monkeypatch.setattr(store, "system_totals", charged_before("system", "bob", system_totals))
    monkeypatch.setattr(store, "tree_size", charged_before("log", "ann", tree_size))
    report = platform.integrity.audit()
    monkeypatch.undo()

    assert {"accounts", "chain", "lots", "system", "log"} <= set(steps)  # every step had a charge commit during it
    assert report.ok, [finding.detail for finding in report.findings]
    assert report.accounts == 2
    assert platform.integrity.audit().ok  # and the ledger is sound with all of them in it
