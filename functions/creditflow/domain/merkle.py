"""The append-only Merkle tree of RFC 6962 / RFC 9162 §2.1: tree hash, audit paths and consistency proofs.

Leaves are raw inputs (here, entry hashes); leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right).
Verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2 and return False, never raise, on anything malformed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_SIZE = 32


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over already leaf-hashed inputs, in one pass with a stack of perfect subtrees."""
    if not hashes:
        return EMPTY_ROOT
    stack: list[bytes] = []
    for index, value in enumerate(hashes):
        # Each trailing one-bit of the index completes a perfect subtree with its left neighbour.
        while index & 1:
            value = node_hash(stack.pop(), value)
            index >>= 1
        stack.append(value)
    result = stack[-1]
    for value in reversed(stack[:-1]):
        result = node_hash(value, result)
    return result


def root(leaves: Sequence[bytes]) -> bytes:
    return root_of_hashes([leaf_hash(leaf) for leaf in leaves])


def _path(hashes: Sequence[bytes], index: int) -> list[bytes]:
    if len(hashes) <= 1:
        return []
    k = _split(len(hashes))
    if index < k:
        return [*_path(hashes[:k], index), root_of_hashes(hashes[k:])]
    return [*_path(hashes[k:], index - k), root_of_hashes(hashes[:k])]


def inclusion_proof_from_hashes(hashes: Sequence[bytes], index: int) -> list[bytes]:
    if not 0 <= index < len(hashes):
        raise ValueError(f"leaf index {index} is outside a tree of size {len(hashes)}")
    return _path(hashes, index)


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    return inclusion_proof_from_hashes([leaf_hash(leaf) for leaf in leaves], index)


def _subproof(m: int, hashes: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if complete else [root_of_hashes(hashes)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, hashes[:k], complete), root_of_hashes(hashes[k:])]
    return [*_subproof(m - k, hashes[k:], False), root_of_hashes(hashes[:k])]


def consistency_proof_from_hashes(hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    if not 0 < old_size <= len(hashes):
        raise ValueError(f"old size {old_size} must be in 1..{len(hashes)}")
    return _subproof(old_size, hashes, True)


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    return consistency_proof_from_hashes([leaf_hash(leaf) for leaf in leaves], old_size)


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    try:
        if not (_is_hash(leaf_hash) and _is_hash(root) and _is_size(index) and _is_size(size)):
            return False
        if index >= size or not all(_is_hash(p) for p in proof):
            return False
        fn, sn, result = index, size - 1, leaf_hash
        for p in proof:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                result = node_hash(p, result)
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
            else:
                result = node_hash(result, p)
            fn >>= 1
            sn >>= 1
        return sn == 0 and result == root
    except Exception:  # a verifier answers False to anything hostile
        return False


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    try:
        if not (_is_size(old_size) and _is_size(new_size) and _is_hash(old_root) and _is_hash(new_root)):
            return False
        proof = list(proof)
        if not all(_is_hash(p) for p in proof) or old_size > new_size:
            return False
        if old_size == new_size:
            return not proof and old_root == new_root
        if old_size == 0:
            return not proof and old_root == EMPTY_ROOT
        if not proof:
            return False
        if old_size & (old_size - 1) == 0:
            proof = [old_root, *proof]
        fn, sn = old_size - 1, new_size - 1
        while fn & 1:
            fn >>= 1
            sn >>= 1
        fr = sr = proof[0]
        for c in proof[1:]:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                fr = node_hash(c, fr)
                sr = node_hash(c, sr)
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
            else:
                sr = node_hash(sr, c)
            fn >>= 1
            sn >>= 1
        return fr == old_root and sr == new_root and sn == 0
    except Exception:  # a verifier answers False to anything hostile
        return False


def prefix_roots(hashes: Sequence[bytes], sizes: set[int]) -> dict[int, bytes]:
    """The tree hash of each requested prefix size, in one pass over the leaf hashes."""
    found: dict[int, bytes] = {}
    if 0 in sizes:
        found[0] = EMPTY_ROOT
    stack: list[bytes] = []
    for index, value in enumerate(hashes):
        position = index
        while position & 1:
            value = node_hash(stack.pop(), value)
            position >>= 1
        stack.append(value)
        if index + 1 in sizes:
            result = stack[-1]
            for left in reversed(stack[:-1]):
                result = node_hash(left, result)
            found[index + 1] = result
    return found
