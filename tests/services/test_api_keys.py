"""Gateway keys: made once per Idempotency-Key (a retry gets the same key and secret), stored by hash alone."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from creditflow.adapters.local.api_keys import SqliteApiKeys
from creditflow.domain.errors import IdempotencyConflict, InvalidIdempotencyKey, KeyLimitReached, TooManyKeys
from creditflow.domain.timefmt import iso
from creditflow.services.api_keys import CALL_MARGIN, MAX_KEYS, SHOWN_REVOKED, GatewayKeys, key_hash
from tests.conftest import SteppedClock

SERVER_SECRET = b"s" * 32
HOLD_TTL = timedelta(minutes=10)


@pytest.fixture
def store(tmp_path: Path) -> SqliteApiKeys:
    return SqliteApiKeys(tmp_path / "keys.sqlite3")


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def keys(store: SqliteApiKeys, clock: SteppedClock) -> GatewayKeys:
    return GatewayKeys(store, clock, SERVER_SECRET, HOLD_TTL)


def test_without_an_idempotency_key_every_call_makes_a_new_key(keys: GatewayKeys, store: SqliteApiKeys) -> None:
    first, second = keys.create("ann", "laptop"), keys.create("ann", "laptop")
    assert first[0] != second[0] and first[1].id != second[1].id
    assert len(store.of_user("ann")) == 2


def test_a_retry_gets_the_same_key_and_secret_and_stores_nothing_more(keys: GatewayKeys,
                                                                       store: SqliteApiKeys) -> None:
    secret, key = keys.create("ann", "laptop", 5_000_000, idempotency_key="make-laptop-key")
    again, replayed = keys.create("ann", "laptop", 5_000_000, idempotency_key="make-laptop-key")
    assert (again, replayed.id) == (secret, key.id)
    assert secret.startswith("cf_") and len(secret) == len("cf_") + 43
    stored = store.of_user("ann")
    assert [k.id for k in stored] == [key.id] and stored[0].hash == key_hash(secret)
    assert keys.caller(secret)[0].uid == "ann"  # the replayed secret is the working one
    other, _ = keys.create("bob", "laptop", 5_000_000, idempotency_key="make-laptop-key")
    assert other != secret and keys.caller(other)[0].uid == "bob"  # the same key string is scoped to its user


@pytest.mark.parametrize(("name", "limit", "field"), [("desktop", 5_000_000, "name"), ("laptop", None, "limit"),
                                                      ("laptop", 7_000_000, "limit")])
def test_the_same_idempotency_key_with_other_fields_is_a_conflict(keys: GatewayKeys, store: SqliteApiKeys,
                                                                  name: str, limit: int | None, field: str) -> None:
    keys.create("ann", "laptop", 5_000_000, idempotency_key="k1")
    with pytest.raises(IdempotencyConflict) as refused:
        keys.create("ann", name, limit, idempotency_key="k1")
    assert refused.value.context["field"] == field
    assert len(store.of_user("ann")) == 1


def test_after_the_server_secret_changes_a_retry_is_refused_not_doubled(keys: GatewayKeys,
                                                                        store: SqliteApiKeys) -> None:
    keys.create("ann", "laptop", idempotency_key="k1")
    rotated = GatewayKeys(store, SteppedClock(), b"r" * 32, HOLD_TTL)
    with pytest.raises(IdempotencyConflict, match="can no longer be shown"):
        rotated.create("ann", "laptop", idempotency_key="k1")
    assert len(store.of_user("ann")) == 1


def test_concurrent_retries_make_one_key(keys: GatewayKeys, store: SqliteApiKeys) -> None:
    secrets: list[str] = []
    barrier = threading.Barrier(12)

    def make() -> None:
        barrier.wait()
        secrets.append(keys.create("ann", "ci", idempotency_key="ci-key")[0])

    threads = [threading.Thread(target=make) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(secrets) == 12 and len(set(secrets)) == 1
    assert len(store.of_user("ann")) == 1


def test_a_retry_is_answered_even_at_the_key_cap(keys: GatewayKeys) -> None:
    for n in range(MAX_KEYS):
        keys.create("ann", f"k{n}", idempotency_key=f"k{n}")
    with pytest.raises(TooManyKeys, match="at most"):
        keys.create("ann", "one more", idempotency_key="one-more")
    assert keys.create("ann", "k3", idempotency_key="k3")[1].name == "k3"


def test_a_malformed_idempotency_key_is_refused_and_stores_nothing(keys: GatewayKeys, store: SqliteApiKeys) -> None:
    with pytest.raises(InvalidIdempotencyKey):
        keys.create("ann", "laptop", idempotency_key="not a key!")
    assert store.of_user("ann") == []


def test_a_call_cut_off_by_a_crash_holds_the_keys_limit_only_until_its_hold_expires(
        keys: GatewayKeys, store: SqliteApiKeys, clock: SteppedClock) -> None:
    _, key = keys.create("ann", "capped", 10_000_000)
    keys.spending(key).admit(8_000_000)  # the process dies here: finish never runs
    with pytest.raises(KeyLimitReached):
        keys.spending(key).admit(3_000_000)
    clock.advance(seconds=(HOLD_TTL + CALL_MARGIN).total_seconds() - 1)
    with pytest.raises(KeyLimitReached):  # its ledger hold may still be settled until then
        keys.spending(key).admit(3_000_000)
    clock.advance(seconds=1)
    assert store.in_flight(key.id, iso(clock.now())) == 0  # counted until then, not at its end
    later = keys.spending(key)
    later.admit(3_000_000)
    later.finish(2_000_000)
    assert store.in_flight(key.id, iso(clock.now())) == 0 and store.by_hash(key.hash).spent == 2_000_000


def test_a_key_without_a_limit_counts_nothing_in_flight(keys: GatewayKeys, store: SqliteApiKeys,
                                                        clock: SteppedClock) -> None:
    _, key = keys.create("ann", "open")
    spend = keys.spending(key)
    spend.admit(50_000_000)
    assert store.in_flight(key.id, iso(clock.now())) == 0
    spend.finish(1_000_000)
    assert store.by_hash(key.hash).spent == 1_000_000


def test_the_list_shows_active_keys_and_only_the_latest_revoked(keys: GatewayKeys, clock: SteppedClock) -> None:
    kept = keys.create("ann", "kept")[1]
    for n in range(SHOWN_REVOKED + 5):
        made = keys.create("ann", f"old-{n}")[1]
        clock.advance(seconds=1)
        keys.revoke("ann", made.id)
    listed = keys.list("ann")
    assert kept.id in [k.id for k in listed] and len(listed) == 1 + SHOWN_REVOKED
    assert {k.name for k in listed if k.revoked_at} == {f"old-{n}" for n in range(5, SHOWN_REVOKED + 5)}


def test_a_voided_holds_count_serves_the_next_hold_once(keys: GatewayKeys, store: SqliteApiKeys,
                                                         clock: SteppedClock) -> None:
    """Two models fail in turn, then a dearer third one holds: what is counted in flight is always at least the
    hold that stands, so concurrent calls cannot pass the limit together."""
    _, key = keys.create("ann", "capped", 10_000_000)
    spend = keys.spending(key)
    spend.admit(1_000_000)
    spend.release(1_000_000)  # the first model failed: its count stays, kept for the next hold
    spend.admit(1_000_000)  # taken from what was kept
    spend.release(1_000_000)
    spend.admit(1_500_000)
    assert store.in_flight(key.id, iso(clock.now())) == 1_500_000


def test_revoking_a_key_again_keeps_the_time_it_was_first_revoked(keys: GatewayKeys, clock: SteppedClock) -> None:
    """A revoke sent again (a retry whose answer was lost) changes nothing: the key keeps its first time, by which
    the list picks the latest revoked keys."""
    _, key = keys.create("ann", "old")
    keys.revoke("ann", key.id)
    first = keys.list("ann")[0].revoked_at
    clock.advance(hours=1)
    keys.revoke("ann", key.id)
    assert first is not None and keys.list("ann")[0].revoked_at == first
