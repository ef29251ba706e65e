"""An entry rewritten and signed again with the platform's key, its account's head moved to it: hashes, links and
signatures then check, and the audit still names each rule of the ledger the rewrite breaks."""

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.entries import seal
from tests.conftest import CREDIT, funded

Ledger = tuple[Platform, sqlite3.Connection, str]


@pytest.fixture
def ledger(platform: Platform, tmp_path: Path) -> Ledger:
    """alice and bob funded, a checkpoint signed; then bob's hold of a credit, his newest entry, not yet in the log
    (so that rewriting it leaves no leaf or checkpoint to disagree)."""
    funded(platform, "alice", 50)
    funded(platform, "bob", 20)
    platform.integrity.publish_checkpoint()
    newest = platform.credits.reserve("bob", CREDIT, key="b0").entry
    assert platform.store.leaf_index(newest) is None
    assert platform.integrity.audit().findings == []
    return platform, sqlite3.connect(tmp_path / "data" / "ledger.sqlite3", isolation_level=None), newest


def reseal(platform: Platform, db: sqlite3.Connection, entry_id: str, **changes: Any) -> None:
    """Rewrite the newest entry of its account with `changes`, hash and sign it again with the platform's own key,
    and move the account's head (seq and hash) to it, as only the signing key's holder could."""
    [(body,)] = db.execute("SELECT body FROM entries WHERE id = ?", (entry_id,))
    fields = {**orjson.loads(body), **changes}
    sealed = seal(fields, seq=fields["seq"], prev=fields["prev"], key=platform.key)
    db.execute("UPDATE entries SET seq = ?, kind = ?, body = ?, hash = ?, signature = ?, key_id = ? WHERE id = ?",
               (sealed.seq, sealed.kind, sealed.body, sealed.hash, sealed.signature, sealed.key_id, entry_id))
    db.execute("UPDATE accounts SET seq = ?, head = ? WHERE id = ?", (sealed.seq, sealed.hash, sealed.account))


def named(platform: Platform) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for finding in platform.integrity.audit().findings:
        found.setdefault(finding.check, set()).add(finding.subject)
    return found


def test_a_resealed_entry_verifies_as_the_honest_one_did(ledger: Ledger) -> None:
    """The rewrite itself is sound: a body sealed again unchanged leaves nothing to name."""
    platform, db, newest = ledger
    reseal(platform, db, newest)
    assert named(platform) == {}


@pytest.mark.parametrize("side", ["available", "held"])
def test_an_entry_stating_a_balance_its_chain_does_not_give_is_named(ledger: Ledger, side: str) -> None:
    """Each entry's balance follows from the previous one: a stated side off by one µc is named, on the entry."""
    platform, db, newest = ledger
    stated = platform.store.entry(newest).fields()["balance"]
    reseal(platform, db, newest, balance={**stated, side: str(int(stated[side]) + 1)})
    assert named(platform) == {"balance": {newest}}


def test_an_entry_numbered_past_the_next_in_its_chain_is_named(ledger: Ledger) -> None:
    """seq runs 1, 2, … per account: an entry that links to the one before it but skips a number is named."""
    platform, db, newest = ledger
    seq = platform.store.entry(newest).seq
    reseal(platform, db, newest, seq=seq + 1)
    assert named(platform) == {"chain": {newest}}


def test_an_entry_of_a_kind_the_ledger_does_not_have_is_named_as_not_replayable(ledger: Ledger) -> None:
    platform, db, newest = ledger
    reseal(platform, db, newest, kind="bonus")
    found = named(platform)
    assert newest in found["entry"]  # not taken as an entry that moves nothing
    assert "user:bob" in found["balance"]  # the account holds what the replay cannot give it


def test_a_chain_that_takes_an_account_below_zero_is_named_an_overdraft(ledger: Ledger) -> None:
    """A hold of more than bob has, its balances stated as the replay gives them and the account made to agree:
    chain, balance and head all check, and the account below zero is named as such."""
    platform, db, newest = ledger
    fields = platform.store.entry(newest).fields()
    available = int(fields["balance"]["available"]) + CREDIT - 21 * CREDIT
    reseal(platform, db, newest, amount=str(21 * CREDIT), balance={"available": str(available),
                                                                   "held": str(21 * CREDIT)})
    db.execute("UPDATE accounts SET available = ?, held = ? WHERE id = 'user:bob'", (available, 21 * CREDIT))
    found = named(platform)
    assert found["overdraft"] == {"user:bob"}
    assert "chain" not in found and "signature" not in found
