"""Perfect subtree hashes of the Merkle log, remembered: proofs for users' entries without hashing every leaf.

Leaves never change once in the log, so a remembered subtree hash stays the hash of what was sequenced; a proof
built from it is checked against the signed checkpoint all the same. Audits and new checkpoints do not use it:
they hash the leaves as stored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..domain.merkle import leaf_hash, node_hash, root_of_hashes

BLOCK_LEVEL = 8  # remembered subtrees hold at least 256 leaves: about 2 × 32 bytes per 256 leaves in memory


class SubtreeCache:
    """A `SubtreeHash` from `read_leaves(start, end)`, remembering subtrees from BLOCK_LEVEL up; thread-safe."""

    def __init__(self, read_leaves: Callable[[int, int], list[bytes]], block_level: int = BLOCK_LEVEL) -> None:
        self.read_leaves = read_leaves
        self.block_level = block_level
        self._known: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()
        self.leaves_read = 0  # for tests and curiosity

    def __call__(self, start: int, level: int) -> bytes:
        known = self._known.get((start, level))
        if known is not None:
            return known
        if level < self.block_level:
            return root_of_hashes(self._leaf_hashes(start, start + (1 << level)))
        with self._lock:
            self._fill(start, level)
        return self._known[(start, level)]

    def _leaf_hashes(self, start: int, end: int) -> list[bytes]:
        leaves = self.read_leaves(start, end)
        if len(leaves) != end - start:
            raise ValueError(f"leaves {start}..{end} are not all in the log")
        self.leaves_read += len(leaves)
        return [leaf_hash(data) for data in leaves]

    def _fill(self, start: int, level: int) -> None:
        """Remember the subtree and every one of BLOCK_LEVEL and up inside it: the unknown blocks are read in one
        pass, the levels above built from them."""
        if (start, level) in self._known:
            return
        size = 1 << self.block_level
        blocks = range(start, start + (1 << level), size)
        missing = [b for b in blocks if (b, self.block_level) not in self._known]
        if missing:
            hashes = self._leaf_hashes(missing[0], missing[-1] + size)
            for b in missing:
                offset = b - missing[0]
                self._known[(b, self.block_level)] = root_of_hashes(hashes[offset:offset + size])
        for up in range(self.block_level + 1, level + 1):
            width = 1 << up
            half = width >> 1
            for s in range(start, start + (1 << level), width):
                if (s, up) not in self._known:
                    self._known[(s, up)] = node_hash(self._known[(s, up - 1)], self._known[(s + half, up - 1)])
