"""Perfect subtree hashes of the Merkle log, remembered: proofs for users' entries without hashing every leaf.

Leaves never change once in the log, so a remembered subtree hash stays the hash of what was sequenced; a proof
built from it is checked against the signed checkpoint all the same (a tampered remembered hash makes a proof fail,
never pass, and the audit names it). New checkpoints are extended from them too (those of leaves under the last
signed head; past it, from the leaves), and signed only if consistent with the last signed head; audits and
`ledger checkpoint` do not use them: they hash the leaves as stored.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

from ..domain.merkle import leaf_hash, node_hash, root_of_hashes
from ..domain.merkle_subtrees import SubtreeHash
from ..ports import SubtreeStore

BLOCK_LEVEL = 8  # remembered subtrees hold at least 256 leaves: about 2 × 32 bytes per 256 leaves in memory
SMALL_SUBTREES = 4096


class SubtreeCache:
    """A `SubtreeHash` from `read_leaves(start, end)`, remembering subtrees from BLOCK_LEVEL up in memory and, when
    given a store, in it (so another process starts warm); thread-safe."""

    def __init__(self, read_leaves: Callable[[int, int], list[bytes]], store: SubtreeStore | None = None,
                 block_level: int = BLOCK_LEVEL) -> None:
        self.read_leaves = read_leaves
        self.store = store
        self.block_level = block_level
        self._known: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()
        self.leaves_read = 0  # for tests and curiosity
        # Below BLOCK_LEVEL, the few latest subtrees: a root, a consistency and an inclusion proof of one call
        # meet the same ones (a bounded memory, as leaves beyond the last block are read again and again).
        self._small = functools.lru_cache(maxsize=SMALL_SUBTREES)(self._small_subtree)

    def __call__(self, start: int, level: int) -> bytes:
        return self.hash(start, level)

    def signed_up_to(self, size: int) -> SubtreeHash:
        """The hashes for extending the signed head of `size` leaves: a remembered hash of leaves past it is not
        read from the store, where nothing vouches for it (a consistency proof that carries it would check the new
        head against itself), but built from the leaves: what publishing costs anyway, the new leaves."""
        return functools.partial(self.hash, signed=size)

    def hash(self, start: int, level: int, signed: int | None = None) -> bytes:
        known = self._known.get((start, level))
        if known is not None:
            return known
        if level < self.block_level:
            return self._small(start, level)
        with self._lock:
            if (start, level) not in self._known:
                self._fill(start, level, signed)
        return self._known[(start, level)]

    def _small_subtree(self, start: int, level: int) -> bytes:
        return root_of_hashes(self._leaf_hashes(start, start + (1 << level)))

    def _leaf_hashes(self, start: int, end: int) -> list[bytes]:
        leaves = self.read_leaves(start, end)
        if len(leaves) != end - start:
            raise ValueError(f"leaves {start}..{end} are not all in the log")
        self.leaves_read += len(leaves)
        return [leaf_hash(data) for data in leaves]

    def _fill(self, start: int, level: int, signed: int | None) -> None:
        """Find the subtree in the store, or build it and every subtree of BLOCK_LEVEL and up inside it: blocks
        from the store where it has them, the others from their leaves read in one pass, the levels above from
        those; what was built is stored (replacing what was remembered). With `signed`, only hashes of leaves
        within the first `signed` are taken from the store."""
        bottom, end = self.block_level, start + (1 << level)
        if self.store is not None and (signed is None or end <= signed):
            stored = self.store.subtree_hashes(level, start, start + 1)
            if start in stored:
                self._known[(start, level)] = stored[start]
                return
        size = 1 << bottom
        blocks = {b: self._known[(b, bottom)] for b in range(start, end, size) if (b, bottom) in self._known}
        if self.store is not None and len(blocks) < (end - start) // size:
            vouched = end if signed is None else min(end, signed)  # the blocks wholly within it
            blocks.update(self.store.subtree_hashes(bottom, start, vouched - size + 1))
        built: dict[int, dict[int, bytes]] = {}
        missing = [b for b in range(start, end, size) if b not in blocks]
        if missing:
            hashes = self._leaf_hashes(missing[0], missing[-1] + size)
            built[bottom] = {b: root_of_hashes(hashes[b - missing[0]:b - missing[0] + size]) for b in missing}
            blocks.update(built[bottom])
        self._known.update(((b, bottom), value) for b, value in blocks.items())
        for up in range(bottom + 1, level + 1):
            half = 1 << (up - 1)
            for s in range(start, end, 2 * half):
                if (s, up) not in self._known:
                    value = node_hash(self._known[(s, up - 1)], self._known[(s + half, up - 1)])
                    self._known[(s, up)] = built.setdefault(up, {})[s] = value
        if self.store is not None:
            for built_level, values in built.items():
                self.store.add_subtree_hashes(built_level, values)
