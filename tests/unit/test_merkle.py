"""RFC 6962 / RFC 9162 §2.1: published Certificate Transparency vectors, hand-worked trees, hostile proofs."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditflow.domain import merkle

LEAVES = [bytes.fromhex(h) for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f"]]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH written straight from the RFC's recursive definition."""
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return sha(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:]))


def test_empty_tree_is_hash_of_nothing() -> None:
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_leaf_and_node_prefixes() -> None:
    assert merkle.leaf_hash(b"\x00").hex() == "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
    assert merkle.node_hash(b"a", b"b") == sha(b"\x01ab")


@pytest.mark.parametrize("size", range(1, 9))
def test_published_roots(size: int) -> None:
    assert merkle.root(LEAVES[:size]).hex() == ROOTS[size - 1]


def test_hand_worked_three_leaf_tree() -> None:
    a, b, c = (merkle.leaf_hash(x) for x in LEAVES[:3])
    assert merkle.root(LEAVES[:3]) == merkle.node_hash(merkle.node_hash(a, b), c)
    assert merkle.inclusion_proof(LEAVES[:3], 2) == [merkle.node_hash(a, b)]
    assert merkle.inclusion_proof(LEAVES[:3], 0) == [b, c]
    assert merkle.consistency_proof(LEAVES[:3], 2) == [c]


def test_published_inclusion_proof_leaf_5_of_8() -> None:
    proof = merkle.inclusion_proof(LEAVES, 5)
    assert [p.hex() for p in proof] == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    assert merkle.verify_inclusion(merkle.leaf_hash(LEAVES[5]), 5, 8, proof, bytes.fromhex(ROOTS[7]))


def test_published_consistency_proof_3_to_8() -> None:
    proof = merkle.consistency_proof(LEAVES, 3)
    assert [p.hex() for p in proof] == [
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert merkle.verify_consistency(3, 8, bytes.fromhex(ROOTS[2]), bytes.fromhex(ROOTS[7]), proof)


def test_every_proof_in_trees_up_to_40_leaves_verifies_and_matches_the_reference() -> None:
    leaves = [f"leaf-{i}".encode() for i in range(40)]
    for size in range(1, 41):
        tree = leaves[:size]
        root = merkle.root(tree)
        assert root == reference_root(tree)
        for index in range(size):
            proof = merkle.inclusion_proof(tree, index)
            assert merkle.verify_inclusion(merkle.leaf_hash(tree[index]), index, size, proof, root)
            assert not merkle.verify_inclusion(merkle.leaf_hash(b"other"), index, size, proof, root)
            if size > 1:
                assert not merkle.verify_inclusion(merkle.leaf_hash(tree[index]), (index + 1) % size, size, proof,
                                                   root)
        for old in range(1, size + 1):
            proof = merkle.consistency_proof(tree, old)
            old_root = merkle.root(tree[:old])
            assert merkle.verify_consistency(old, size, old_root, root, proof)
            assert not merkle.verify_consistency(old, size, merkle.root([b"x", *tree[1:old]]), root, proof)


def test_prefix_roots_match_roots() -> None:
    hashes = [merkle.leaf_hash(bytes([i])) for i in range(33)]
    found = merkle.prefix_roots(hashes, {0, 1, 5, 8, 33})
    assert found == {n: merkle.root_of_hashes(hashes[:n]) for n in (0, 1, 5, 8, 33)}


def test_proof_arguments_out_of_range_raise() -> None:
    with pytest.raises(ValueError):
        merkle.inclusion_proof(LEAVES, 8)
    with pytest.raises(ValueError):
        merkle.consistency_proof(LEAVES, 0)
    with pytest.raises(ValueError):
        merkle.consistency_proof(LEAVES, 9)


ROOT8 = bytes.fromhex(ROOTS[7])
LEAF5 = merkle.leaf_hash(LEAVES[5])
GOOD = merkle.inclusion_proof(LEAVES, 5)


@pytest.mark.parametrize(("leaf", "index", "size", "proof", "root"), [
    (LEAF5, 5, 8, GOOD[:-1], ROOT8),  # too short
    (LEAF5, 5, 8, [*GOOD, GOOD[0]], ROOT8),  # too long
    (LEAF5, 8, 8, GOOD, ROOT8),  # index out of range
    (LEAF5, -1, 8, GOOD, ROOT8),
    (LEAF5, 5, 0, GOOD, ROOT8),
    (LEAF5, 5, 9, GOOD, ROOT8),
    (LEAF5[:31], 5, 8, GOOD, ROOT8),  # short hashes
    (LEAF5, 5, 8, [GOOD[0][:31], *GOOD[1:]], ROOT8),
    (LEAF5, 5, 8, GOOD, ROOT8[:16]),
    (LEAF5, 5, 8, None, ROOT8),  # wrong types
    (LEAF5, "5", 8, GOOD, ROOT8),
    (LEAF5, True, 8, GOOD, ROOT8),
    ("not bytes", 5, 8, GOOD, ROOT8),
    (LEAF5, 5, 8, ["x" * 32, *GOOD[1:]], ROOT8),
])
def test_verify_inclusion_says_false_to_malformed_proofs(leaf, index, size, proof, root) -> None:
    assert merkle.verify_inclusion(leaf, index, size, proof, root) is False


OLD3 = bytes.fromhex(ROOTS[2])
CONSISTENT = merkle.consistency_proof(LEAVES, 3)


@pytest.mark.parametrize(("old", "new", "old_root", "new_root", "proof"), [
    (3, 8, OLD3, ROOT8, CONSISTENT[:-1]),
    (3, 8, OLD3, ROOT8, [*CONSISTENT, CONSISTENT[0]]),
    (3, 8, OLD3, ROOT8, []),
    (8, 3, ROOT8, OLD3, CONSISTENT),
    (4, 8, OLD3, ROOT8, CONSISTENT),
    (-1, 8, OLD3, ROOT8, CONSISTENT),
    (3, 8, OLD3[:31], ROOT8, CONSISTENT),
    (3, 8, OLD3, ROOT8, None),
    (3, 8, OLD3, ROOT8, [b"\x00" * 31, *CONSISTENT[1:]]),
    (8, 8, ROOT8, OLD3, []),
    (8, 8, ROOT8, ROOT8, [ROOT8]),
    (0, 8, OLD3, ROOT8, []),
    ("3", 8, OLD3, ROOT8, CONSISTENT),
])
def test_verify_consistency_says_false_to_malformed_proofs(old, new, old_root, new_root, proof) -> None:
    assert merkle.verify_consistency(old, new, old_root, new_root, proof) is False


def test_trivial_consistency() -> None:
    assert merkle.verify_consistency(8, 8, ROOT8, ROOT8, [])
    assert merkle.verify_consistency(0, 8, merkle.EMPTY_ROOT, ROOT8, [])


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=70), st.data())
def test_any_single_byte_flip_in_a_proof_fails(size: int, data: st.DataObject) -> None:
    leaves = [bytes([i % 256, i // 256]) for i in range(size)]
    root = merkle.root(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = merkle.inclusion_proof(leaves, index)
    if proof:
        which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bit = data.draw(st.integers(min_value=0, max_value=255))
        flipped = bytearray(proof[which])
        flipped[bit // 8] ^= 1 << (bit % 8)
        proof[which] = bytes(flipped)
        assert not merkle.verify_inclusion(merkle.leaf_hash(leaves[index]), index, size, proof, root)
    old = data.draw(st.integers(min_value=1, max_value=size))
    consistency = merkle.consistency_proof(leaves, old)
    assert merkle.verify_consistency(old, size, merkle.root(leaves[:old]), root, consistency)
    if consistency:
        consistency[-1] = consistency[-1][::-1] if consistency[-1] != consistency[-1][::-1] else b"\x00" * 32
        assert not merkle.verify_consistency(old, size, merkle.root(leaves[:old]), root, consistency)


def test_no_leaf_past_the_end_of_the_tree_is_proved_included() -> None:
    leaves = [b"a"]
    root = merkle.root(leaves)
    assert merkle.verify_inclusion(merkle.leaf_hash(b"a"), 0, 1, [], root)
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"a"), 1, 1, [], root)


def test_a_proof_that_goes_on_past_its_trees_root_is_refused() -> None:
    """RFC 9162 §2.1.3.2 and §2.1.4.2 stop at the root of the tree the sizes name: a proof of the right half of an
    8-leaf tree, taken on by the left half's hash, must not pass as a proof in a 4-leaf tree with the 8-leaf root."""
    left = merkle.root(LEAVES[:4])
    right_half = LEAVES[4:]
    inclusion = [*merkle.inclusion_proof(right_half, 0), left]
    assert merkle.verify_inclusion(merkle.leaf_hash(LEAVES[4]), 4, 8, inclusion, ROOT8)  # the same hashes
    assert not merkle.verify_inclusion(merkle.leaf_hash(LEAVES[4]), 0, 4, inclusion, ROOT8)
    consistency = [*merkle.consistency_proof(right_half, 3), left]
    assert not merkle.verify_consistency(3, 4, bytes.fromhex(ROOTS[6]), ROOT8, consistency)


def test_a_boolean_is_no_index_or_size_even_where_its_number_would_verify() -> None:
    """JSON's true is not the number 1: an export's leaf index or a head's size given as true is malformed."""
    proof = merkle.inclusion_proof(LEAVES, 1)
    assert merkle.verify_inclusion(merkle.leaf_hash(LEAVES[1]), 1, 8, proof, ROOT8)
    assert not merkle.verify_inclusion(merkle.leaf_hash(LEAVES[1]), True, 8, proof, ROOT8)
    first = merkle.leaf_hash(LEAVES[0])
    assert not merkle.verify_inclusion(first, 0, True, [], first)
    assert not merkle.verify_consistency(True, 8, first, ROOT8, merkle.consistency_proof(LEAVES, 1))


def test_no_proof_makes_a_tree_consistent_with_a_smaller_one() -> None:
    """A log only grows: whatever the hashes, a head of 7 leaves is never proved a prefix of a head of 2."""
    hashes = [merkle.leaf_hash(leaf) for leaf in LEAVES[:2]]
    assert merkle.verify_consistency(1, 2, hashes[0], merkle.root(LEAVES[:2]), [hashes[1]])
    assert not merkle.verify_consistency(7, 2, hashes[0], merkle.root(LEAVES[:2]), hashes)
