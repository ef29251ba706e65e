"""A rotation of the local key files, seen by a platform already built on them (the running runtime)."""

from __future__ import annotations

from pathlib import Path

import pytest

from creditflow.adapters.local.dev_tokens import DevTokens
from creditflow.adapters.local.key_files import KeyFiles
from creditflow.bootstrap import derived_secret, dev_token_key, key_watch
from creditflow.domain.callers import Caller
from creditflow.domain.errors import LedgerError
from tests.conftest import CREDIT, make_platform


def test_the_watch_takes_up_a_rotation_and_old_entries_keep_verifying(tmp_path: Path) -> None:
    platform = make_platform(tmp_path / "data")
    platform.credits.open_account("ada")
    platform.credits.grant("ada", 5 * CREDIT, source="admin", lot_kind="paid", key="before")
    check = key_watch(platform)
    assert check is not None and check() is False  # nothing changed yet
    old = platform.key.public
    new = KeyFiles(tmp_path / "data", platform.settings.ledger_origin).rotate().public
    assert check() is True
    assert platform.key.public == new and platform.credits.key.public == new and platform.integrity.key.public == new
    assert {k.vkey for k in platform.keyring.public_keys()} == {old.vkey, new.vkey}
    platform.credits.grant("ada", 1 * CREDIT, source="admin", lot_kind="paid", key="after")
    assert list(platform.store.chain("user:ada"))[-1].key_id == new.key_id.hex()
    assert platform.integrity.publish_checkpoint().key_id == new.key_id.hex()
    assert platform.integrity.audit().ok
    assert check() is False


def test_the_dev_token_key_outlives_rotations_and_starts_as_it_was_derived(tmp_path: Path) -> None:
    platform = make_platform(tmp_path / "data")
    settings = platform.settings
    first = dev_token_key(settings, platform.key)
    assert first.seed == derived_secret(platform.key, "dev tokens")  # tokens issued before it was kept still pass
    token = DevTokens(first).issue("ada")
    KeyFiles(settings.data_dir, settings.ledger_origin).rotate()
    rebuilt = make_platform(tmp_path / "data")  # a restart after the rotation
    assert rebuilt.key.public != platform.key.public
    assert rebuilt.tokens.verify(token).uid == "ada"
    assert dev_token_key(settings, rebuilt.key).seed == first.seed
    assert (settings.data_dir / "keys" / "dev-tokens.secret").stat().st_mode & 0o077 == 0


def test_secrets_derived_from_the_ledger_key_outlive_its_rotation(tmp_path: Path) -> None:
    """A gateway key made with an Idempotency-Key is shown again to a retry, and the welcome bonus's per-address
    count goes on, across a rotation and a restart (both were keyed by secrets derived from the rotated key)."""
    platform = make_platform(tmp_path / "data")
    secret, made = platform.keys.create("ada", "sdk", idempotency_key="k-1")
    KeyFiles(tmp_path / "data", platform.settings.ledger_origin).rotate()
    restarted = make_platform(tmp_path / "data")
    assert restarted.key.public != platform.key.public
    assert restarted.keys.create("ada", "sdk", idempotency_key="k-1") == (secret, made)
    for uid in ("u1", "u2", "u3"):  # the per-address limit, WELCOME_PER_IP_LIMIT=3, used up before the rotation
        platform.welcome.claim(Caller(uid=uid, email=f"{uid}@example.com", email_verified=True), ip="10.0.0.1")
    with pytest.raises(LedgerError):
        restarted.welcome.claim(Caller(uid="u4", email="u4@example.com", email_verified=True), ip="10.0.0.1")


def test_verify_keys_are_accepted_beside_the_key_files(tmp_path: Path) -> None:
    """An operator who signed with LEDGER_SIGNING_KEY and moves to the local key files keeps the old key's entries
    verifying by naming it in LEDGER_VERIFY_KEYS, as the README says: the key files do not make it ignored."""
    import base64

    seed = base64.b64encode(bytes(range(32))).decode()
    before = make_platform(tmp_path / "data", signing_key=seed)
    before.credits.open_account("ada")
    before.credits.grant("ada", 5 * CREDIT, source="admin", lot_kind="paid", key="signed-by-the-secret")
    old = before.key.public
    before.store.close()  # type: ignore[attr-defined]
    after = make_platform(tmp_path / "data", verify_keys=(old.vkey,))
    assert after.key.public != old  # signs with the key files' key now
    assert old.vkey in {k.vkey for k in after.keyring.public_keys()}
    after.credits.grant("ada", 1 * CREDIT, source="admin", lot_kind="paid", key="signed-by-the-files")
    assert after.integrity.audit().ok
