"""The browser's verifier (web/src/canonical.js, merkle.js), run by node, agrees with the Python one: on canonical
JSON of any body an entry can hold, and on every inclusion and consistency proof, valid or altered."""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditflow.domain import merkle
from creditflow.domain.entries import canonical
from creditflow.domain.merkle_subtrees import consistency_path, inclusion_path, range_root
from creditflow.domain.signing import SigningKey

SCRIPT = Path(__file__).with_name("browser_verifier.mjs")
WEB_MODULES = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "@noble" / "hashes"
SAFE = 2**53 - 1


class Browser:
    """One node process answering a JSON line per request (a process per example would be too slow)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(["node", str(SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, encoding="utf-8")

    def __call__(self, op: str, **request: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **request}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        assert "error" not in answer, answer["error"]
        return answer["ok"]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which("node") is None or not WEB_MODULES.is_dir():
        pytest.skip("node and web/node_modules are needed to run the browser's verifier")
    running = Browser()
    yield running
    running.close()


# -- canonical JSON ---------------------------------------------------------------------------------------------------

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-SAFE, max_value=SAFE), texts)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)), max_leaves=20)
memos = st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=64),
                        st.text(st.characters(exclude_categories=("Cs",)), max_size=64), max_size=16)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(texts, values, max_size=8), memos)
def test_the_browser_writes_every_entry_body_byte_for_byte_as_python_does(browser: Browser, document: dict,
                                                                             memo: dict) -> None:
    """What verify.js checks: canonical(JSON.parse(body)) === body, for every body Python seals (memos are what
    callers send, any unicode in keys and values)."""
    body = canonical({**document, "memo": memo, "seq": 1, "v": 1, "prev": "0" * 64}).decode()
    assert browser("canonical", body=body) == body


def test_edge_values_agree(browser: Browser) -> None:
    document = {"\U0001f600": [SAFE, -SAFE, 0], "\ufb33": "\u2028\u2029\x7f\x00\x1f\"\\/\u00e9", "": None,
                "a\u0000": True, "\u00e9": False, "A": {"\ud7ff": "\ue000", "z": "\U0010ffff"}}
    body = canonical(document).decode()
    assert browser("canonical", body=body) == body


# -- Merkle proofs ----------------------------------------------------------------------------------------------------

def leaves(size: int, salt: int = 0) -> list[bytes]:
    return [hashlib.sha256(f"{salt}:{n}".encode()).digest() for n in range(size)]


@pytest.mark.parametrize("size", [*range(1, 18), 31, 32, 33, 63, 64, 65])
def test_every_inclusion_and_consistency_proof_verifies_in_the_browser(browser: Browser, size: int) -> None:
    data = leaves(size)
    hashes = [merkle.leaf_hash(d) for d in data]
    assert browser("leaf", data=data[0].hex()) == hashes[0].hex()  # 0x00 before the data
    roots = merkle.prefix_roots(hashes, set(range(size + 1)))
    for index in range(size):
        proof = [p.hex() for p in merkle.inclusion_proof_from_hashes(hashes, index)]
        request = {"leaf": hashes[index].hex(), "index": index, "size": size, "proof": proof, "root": roots[size].hex()}
        assert browser("inclusion", **request) is True
        assert browser("inclusion", **{**request, "index": index + size}) is False
        assert browser("inclusion", **{**request, "index": size}) is False
    for old in range(0, size + 1):
        proof = [p.hex() for p in merkle.consistency_proof_from_hashes(hashes, old)] if old else []
        request = {"old": old, "size": size, "oldRoot": roots[old].hex(), "root": roots[size].hex(), "proof": proof}
        assert browser("consistency", **request) is True
        assert merkle.verify_consistency(old, size, roots[old], roots[size], [bytes.fromhex(p) for p in proof])
        if old < size:
            backwards = {**request, "old": size, "size": old, "oldRoot": roots[size].hex(), "root": roots[old].hex()}
            assert browser("consistency", **backwards) is False


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 70), st.data())
def test_altered_proofs_get_the_same_verdict_in_both(browser: Browser, size: int, data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(d) for d in leaves(size, salt=size)]
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size))
    inclusion = merkle.inclusion_proof_from_hashes(hashes, index)
    consistency = merkle.consistency_proof_from_hashes(hashes, old)
    roots = merkle.prefix_roots(hashes, {old, size})

    def altered(proof: list[bytes]) -> list[bytes]:
        change = data.draw(st.sampled_from(["flip", "drop", "add", "none"]))
        if change == "flip" and proof:
            at = data.draw(st.integers(0, len(proof) - 1))
            return [*proof[:at], bytes([proof[at][0] ^ 1]) + proof[at][1:], *proof[at + 1:]]
        if change == "drop" and proof:
            return proof[:-1]
        if change == "add":
            return [*proof, hashes[0]]
        return proof

    claimed_index = data.draw(st.sampled_from([index, index + 1, index - 1, size]))
    claimed_size = data.draw(st.sampled_from([size, size + 1, size - 1, old]))
    proof = altered(inclusion)
    python = merkle.verify_inclusion(hashes[index], claimed_index, claimed_size, proof, roots[size])
    assert browser("inclusion", leaf=hashes[index].hex(), index=claimed_index, size=claimed_size,
                   proof=[p.hex() for p in proof], root=roots[size].hex()) is python
    proof = altered(consistency)
    claimed_old = data.draw(st.sampled_from([old, old + 1, old - 1, 0]))
    python = merkle.verify_consistency(claimed_old, claimed_size, roots[old], roots[size], proof)
    assert browser("consistency", old=claimed_old, size=claimed_size, oldRoot=roots[old].hex(),
                   root=roots[size].hex(), proof=[p.hex() for p in proof]) is python


class Striped:
    """A log too large to build whose leaves are constant on stripes between the given boundaries: the hash of a
    perfect subtree inside one stripe comes from its level, the few across a boundary from their halves."""

    def __init__(self, boundaries: set[int]) -> None:
        self.boundaries = sorted(boundaries | {0})
        self.known: dict[tuple[int, int], bytes] = {}

    def stripe(self, index: int) -> int:
        return bisect.bisect_right(self.boundaries, index) - 1

    def leaf(self, index: int) -> bytes:
        return merkle.leaf_hash(str(self.stripe(index)).encode())

    def __call__(self, start: int, level: int) -> bytes:
        if (start, level) not in self.known:
            if level == 0:
                value = self.leaf(start)
            elif self.stripe(start) == self.stripe(start + (1 << level) - 1):
                value = self._uniform(self.stripe(start), level)
            else:
                half = 1 << (level - 1)
                value = merkle.node_hash(self(start, level - 1), self(start + half, level - 1))
            self.known[(start, level)] = value
        return self.known[(start, level)]

    def _uniform(self, stripe: int, level: int) -> bytes:
        value = merkle.leaf_hash(str(stripe).encode())
        for _ in range(level):
            value = merkle.node_hash(value, value)
        return value


@settings(max_examples=300, deadline=None)
@given(st.integers(2, SAFE).flatmap(lambda size: st.tuples(st.integers(1, size - 1), st.just(size))),
       st.integers(0, SAFE), st.sets(st.integers(1, SAFE), max_size=4))
def test_large_trees_verify_alike(browser: Browser, sizes: tuple[int, int], seed: int, boundaries: set[int]) -> None:
    """Sizes up to 2**53 - 1 (the browser's safe integers): the verifiers stay exact, whatever the size's bits."""
    old, size = sizes
    log = Striped(boundaries | {old, seed % size})
    old_root, root = range_root(log, 0, old), range_root(log, 0, size)
    proof = consistency_path(log, old, size)
    assert merkle.verify_consistency(old, size, old_root, root, proof)
    assert browser("consistency", old=old, size=size, oldRoot=old_root.hex(), root=root.hex(),
                   proof=[p.hex() for p in proof]) is True
    index = seed % size
    path = inclusion_path(log, index, size)
    assert merkle.verify_inclusion(log.leaf(index), index, size, path, root)
    assert browser("inclusion", leaf=log.leaf(index).hex(), index=index, size=size, proof=[p.hex() for p in path],
                   root=root.hex()) is True


@pytest.mark.parametrize("old", [2**49 + 1, 2**50 + 1, 2**52 + 3, 2**53 - 2])
def test_an_old_size_just_above_a_power_of_two_is_not_taken_for_one(browser: Browser, old: int) -> None:
    """The browser told a power of two by Math.log2, which rounds log2(2**50 + 1) to 50: valid proofs failed."""
    size = old + 1
    log = Striped({old - 1, old})
    old_root, root = range_root(log, 0, old), range_root(log, 0, size)
    proof = consistency_path(log, old, size)
    assert merkle.verify_consistency(old, size, old_root, root, proof)
    assert browser("consistency", old=old, size=size, oldRoot=old_root.hex(), root=root.hex(),
                   proof=[p.hex() for p in proof]) is True


# -- which keys it believes -------------------------------------------------------------------------------------------

def _named(key: SigningKey) -> str:
    """How the harness names a key it trusts: name+key id+hex of the Ed25519 key."""
    public = key.public
    return f"{public.name}+{public.key_id.hex()}+{public.key.hex()}"


def test_pinned_keys_are_believed_instead_of_those_the_server_publishes(browser: Browser) -> None:
    """A server (or whoever can write its key list) that publishes a key of its own is not believed once the app was
    built with pinned keys; without pins the published ones are what there is."""
    ours, rotated, theirs = (SigningKey.generate("creditflow.local/ledger") for _ in range(3))
    published = {"active": theirs.public.vkey, "keys": [ours.public.vkey, theirs.public.vkey]}
    unpinned = browser("trusted", published=published, pinned=[])
    assert unpinned == {"keys": [_named(theirs), _named(ours)], "pinned": False, "said": "a published key"}
    pinned = browser("trusted", published=published, pinned=[ours.public.vkey, rotated.public.vkey])
    assert pinned == {"keys": [_named(ours), _named(rotated)], "pinned": True, "said": "a key pinned in this app"}


def test_the_build_pins_the_keys_it_is_given_and_refuses_a_mistyped_one(tmp_path: Path) -> None:
    if shutil.which("node") is None or not WEB_MODULES.is_dir():
        pytest.skip("node and web/node_modules are needed to build the web app")
    key = SigningKey.generate("creditflow.local/ledger").public.vkey
    web = WEB_MODULES.parents[2]

    def build(pins: str, out: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["node", "build.mjs", "--out", str(out)], cwd=web, capture_output=True, text=True,
                              env={**os.environ, "WEB_LEDGER_KEYS": pins}, timeout=120)

    def bundled(out: Path) -> str:
        return "".join(path.read_text() for path in out.rglob("*.js"))

    built = build(f" {key}, ", tmp_path / "pinned")
    assert built.returncode == 0 and "1 pinned key" in built.stdout, built.stderr
    assert json.dumps([key]) in bundled(tmp_path / "pinned")  # in the code, not only in the source maps
    plain = build("", tmp_path / "plain")
    assert plain.returncode == 0 and "pinned" not in plain.stdout and key not in bundled(tmp_path / "plain")
    mistyped = build(key[:-6] + "AAAAA=", tmp_path / "mistyped")
    assert mistyped.returncode != 0 and "WEB_LEDGER_KEYS" in mistyped.stderr, mistyped.stderr
