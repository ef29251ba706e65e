"""RFC 6962 tree hashes and proofs from the hashes of perfect subtrees, so that a proof costs O(log² n) subtree
lookups instead of hashing every leaf.

Every subtree the RFC's recursion meets is either perfect and aligned (2**level leaves starting at a multiple of
2**level) or splits into such subtrees; `SubtreeHash(start, level)` answers for the perfect ones (the services'
SubtreeCache remembers them). Outputs are byte-identical to `merkle.inclusion_proof` and `merkle.consistency_proof`
(a property test checks it).
"""

from __future__ import annotations

from collections.abc import Callable

from .merkle import EMPTY_ROOT, node_hash

SubtreeHash = Callable[[int, int], bytes]  # (start, level) -> MTH of leaves [start, start + 2**level)


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _level(n: int) -> int:
    return n.bit_length() - 1


def range_root(subtree: SubtreeHash, start: int, end: int) -> bytes:
    """MTH of leaves [start, end), where start is aligned as the RFC's recursion leaves it."""
    n = end - start
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0:
        return subtree(start, _level(n))
    k = _split(n)
    return node_hash(subtree(start, _level(k)), range_root(subtree, start + k, end))


def inclusion_path(subtree: SubtreeHash, index: int, size: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(range_root(subtree, start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, _level(k)))
            start += k
    proof.reverse()  # the recursion appends the deepest sibling first
    return proof


def consistency_path(subtree: SubtreeHash, old_size: int, new_size: int) -> list[bytes]:
    """The consistency proof from the tree of `old_size` leaves to that of `new_size` (RFC 9162 §2.1.4.1)."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"old size {old_size} must be in 1..{new_size}")
    proof: list[bytes] = []
    start, end, m, complete = 0, new_size, old_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            proof.append(range_root(subtree, start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, _level(k)))
            start, m, complete = start + k, m - k, False
    if not complete:
        proof.append(range_root(subtree, start, end))
    proof.reverse()
    return proof
