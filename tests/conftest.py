"""Shared fixtures: a platform on a real SQLite file with a clock the test controls."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform, build
from creditflow.config import Settings
from tests.firestore_emulator import FirestoreEmulator, find_jar

CREDIT = 1_000_000


@dataclass
class SteppedClock:
    """A clock that stands still until the test moves it."""

    moment: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


class Crash(BaseException):
    """The process dying: no handler of the platform's catches it."""


@contextmanager
def dying_after(owner: object, method: str, when: Callable[..., bool] | None = None) -> Iterator[None]:
    """Within the block, `owner.method` does its work and then the process dies (Crash), as a kill -9 right after
    it would leave things (only after a call whose arguments `when` accepts, if given); the method is itself again
    afterwards."""
    original = getattr(owner, method)

    def then_die(*args: object, **kwargs: object) -> object:
        done = original(*args, **kwargs)
        if when is not None and not when(*args, **kwargs):
            return done
        raise Crash

    setattr(owner, method, then_die)
    try:
        with pytest.raises(Crash):
            yield
    finally:
        setattr(owner, method, original)


pytest_plugins = ["tests.xdist_groups"]  # which tests share a worker under `make test` (pytest-xdist)


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    """Google's Firestore emulator, started once per test process on a free loopback port (only when a test asks)."""
    jar, why = find_jar()
    if jar is None:
        pytest.skip(why)
    emulator = FirestoreEmulator(jar)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


def make_platform(data_dir: Path, clock: SteppedClock | None = None, **settings: object) -> Platform:
    return build(Settings.from_env(runtime="local", data_dir=data_dir, **settings), clock=clock)


@pytest.fixture
def platform(tmp_path: Path, clock: SteppedClock) -> Iterator[Platform]:
    built = make_platform(tmp_path / "data", clock)
    yield built
    built.store.close()  # type: ignore[attr-defined]


def funded(platform: Platform, uid: str, credits: int, **grant: object) -> None:
    platform.credits.open_account(uid)
    platform.credits.grant(uid, credits * CREDIT, source=str(grant.pop("source", "admin")),
                           lot_kind=str(grant.pop("lot_kind", "paid")), key=f"fund-{uid}-{credits}", **grant)


def database_digest(path: Path) -> str:
    """A digest of every row of every table: equal digests mean nothing was written."""
    digest = hashlib.sha256()
    with sqlite3.connect(path) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            digest.update(table.encode())
            for row in db.execute(f"SELECT * FROM {table} ORDER BY 1"):
                digest.update(repr(row).encode())
    return digest.hexdigest()
