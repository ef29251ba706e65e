"""An entry exported with its inclusion proof and signed checkpoint, checked offline with nothing but the public key:
the export verifies as made, and each way of altering it is refused and named by the check it fails."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditflow.bootstrap import Platform
from creditflow.domain.proofs import verify_export
from creditflow.domain.signing import Keyring
from tests.conftest import CREDIT, SteppedClock, make_platform


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, list[str]]]:
    """A small ledger (seven entries, so every leaf's proof has several hashes) and the ids of its entries."""
    platform = make_platform(tmp_path_factory.mktemp("proofs") / "data", SteppedClock())
    platform.credits.open_account("ada")
    for n in range(3):
        platform.credits.grant("ada", (n + 1) * CREDIT, source="admin", lot_kind="paid", key=f"g{n}")
    hold = platform.credits.reserve("ada", 2 * CREDIT, key="r")
    platform.credits.settle("ada", hold.hold, CREDIT, key="s")
    ids = [entry.id for entry in platform.credits.history("ada", limit=50)[0]]
    yield platform, ids
    platform.store.close()  # type: ignore[attr-defined]


def public_only(platform: Platform) -> Keyring:
    """What a verifier holds: the platform's public key, nothing else."""
    return Keyring([platform.key.public])


def export_of(made: tuple[Platform, list[str]], n: int = 0) -> dict[str, Any]:
    platform, ids = made
    return json.loads(json.dumps(platform.integrity.export_entry(ids[n])))  # as read back from its file


def checks(export: Any, made: tuple[Platform, list[str]]) -> set[str]:
    return {finding.check for finding in verify_export(export, public_only(made[0]))}


def test_every_entry_exported_verifies_with_the_public_key_alone(made: tuple[Platform, list[str]]) -> None:
    platform, ids = made
    assert len(ids) >= 4
    for n in range(len(ids)):
        assert verify_export(export_of(made, n), public_only(platform)) == []


def test_another_platforms_key_verifies_neither_the_entry_nor_the_checkpoint(
        made: tuple[Platform, list[str]], tmp_path: Path) -> None:
    stranger = make_platform(tmp_path / "stranger")
    findings = verify_export(export_of(made), Keyring([stranger.key.public]))
    assert {f.check for f in findings} == {"signature", "checkpoint"}
    stranger.store.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("document", [[], "x", None, {"format": "creditflow-entry-proof/2"}, {}],
                         ids=["list", "text", "null", "another format", "no format"])
def test_what_is_not_an_export_of_this_format_is_named_so(document: Any, made: tuple[Platform, list[str]]) -> None:
    assert checks(document, made) == {"format"}


def test_an_export_of_another_format_is_refused_even_when_its_parts_would_verify(
        made: tuple[Platform, list[str]]) -> None:
    export = export_of(made)
    export["format"] = "creditflow-entry-proof/2"
    assert checks(export, made) == {"format"}


@pytest.mark.parametrize("part", ["entry", "leaf_index", "inclusion_proof", "checkpoint"])
def test_an_export_missing_a_part_is_malformed(part: str, made: tuple[Platform, list[str]]) -> None:
    export = export_of(made)
    del export[part]
    assert checks(export, made) == {"format"}


def test_a_proof_hash_that_is_not_strict_base64_is_malformed_not_read_leniently(
        made: tuple[Platform, list[str]]) -> None:
    export = export_of(made)
    assert export["inclusion_proof"]
    export["inclusion_proof"][0] = "*" + export["inclusion_proof"][0]  # a lenient decoder would skip the star
    assert checks(export, made) == {"format"}


def test_a_changed_amount_fails_the_entry_not_the_checkpoint(made: tuple[Platform, list[str]]) -> None:
    export = export_of(made)
    body = export["entry"]["body"]
    export["entry"]["body"] = body.replace('"amount":"1000000"', '"amount":"9000000"')
    assert export["entry"]["body"] != body
    found = checks(export, made)
    assert "hash" in found and "checkpoint" not in found


def test_a_body_rehashed_to_match_fails_its_signature_and_its_inclusion(made: tuple[Platform, list[str]]) -> None:
    """Whoever alters an entry and recomputes its hash has no key to sign the new hash, and the checkpoint does not
    hold it."""
    export = export_of(made)
    body = export["entry"]["body"].replace('"amount":"1000000"', '"amount":"9000000"')
    export["entry"]["body"], export["entry"]["hash"] = body, hashlib.sha256(body.encode()).hexdigest()
    assert checks(export, made) == {"signature", "inclusion"}


def test_a_body_that_is_not_canonical_json_is_named_so(made: tuple[Platform, list[str]]) -> None:
    """The same fields written with spaces: a hash over them is not the hash of the entry's canonical form."""
    export = export_of(made)
    body = json.dumps(json.loads(export["entry"]["body"]), indent=1)
    export["entry"]["body"], export["entry"]["hash"] = body, hashlib.sha256(body.encode()).hexdigest()
    assert "canonical" in checks(export, made)


def test_a_stored_hash_that_is_not_hexadecimal_fails_without_a_crash(made: tuple[Platform, list[str]]) -> None:
    export = export_of(made)
    export["entry"]["hash"] = "zz" * 32
    found = checks(export, made)
    assert {"hash", "inclusion"} <= found


def test_a_changed_checkpoint_is_named(made: tuple[Platform, list[str]]) -> None:
    export = export_of(made)
    lines = export["checkpoint"].split("\n")
    lines[1] = str(int(lines[1]) + 1)  # the tree size it signs
    export["checkpoint"] = "\n".join(lines)
    assert "checkpoint" in checks(export, made)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_an_entry_is_proven_only_at_its_own_leaf(made: tuple[Platform, list[str]], data: st.DataObject) -> None:
    """Any other leaf index, or any proof hash with one bit flipped, fails inclusion; nothing else is blamed."""
    export = export_of(made, data.draw(st.integers(0, len(made[1]) - 1)))
    if data.draw(st.booleans()):
        index = export["leaf_index"]
        export["leaf_index"] = data.draw(st.integers(0, 2 * index + 8).filter(lambda other: other != index))
    else:
        proof = export["inclusion_proof"]
        which = data.draw(st.integers(0, len(proof) - 1))
        raw = bytearray(base64.b64decode(proof[which]))
        bit = data.draw(st.integers(0, 8 * len(raw) - 1))
        raw[bit // 8] ^= 1 << (bit % 8)
        proof[which] = base64.b64encode(bytes(raw)).decode()
    assert checks(export, made) == {"inclusion"}
