"""Proofs from remembered subtree hashes are byte-identical to the RFC 6962 proofs over every leaf."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditflow.domain import merkle
from creditflow.domain.merkle_subtrees import consistency_path, inclusion_path, range_root
from creditflow.services.subtree_cache import SubtreeCache


def leaves_of(size: int) -> list[bytes]:
    return [n.to_bytes(4, "big") for n in range(size)]


def cache_over(leaves: list[bytes], block_level: int) -> SubtreeCache:
    return SubtreeCache(lambda start, end: leaves[start:end], block_level=block_level)


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 300), data=st.data(), block_level=st.integers(0, 4))
def test_inclusion_and_consistency_match_the_leaf_by_leaf_proofs(size: int, data: st.DataObject,
                                                                   block_level: int) -> None:
    leaves = leaves_of(size)
    cache = cache_over(leaves, block_level)
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size))
    assert range_root(cache, 0, size) == merkle.root(leaves)
    assert inclusion_path(cache, index, size) == merkle.inclusion_proof(leaves, index)
    assert consistency_path(cache, old, size) == merkle.consistency_proof(leaves, old)


def test_a_warm_cache_reads_few_leaves_per_proof() -> None:
    leaves = leaves_of(100_000)
    cache = cache_over(leaves, block_level=8)
    inclusion_path(cache, 12_345, len(leaves))  # the first proof reads the blocks it needs
    before = cache.leaves_read
    for index in (7, 50_000, 99_999, 65_536):
        assert inclusion_path(cache, index, len(leaves)) == merkle.inclusion_proof(leaves, index)
    assert cache.leaves_read - before < 4 * 2 * 256  # under a block's worth (twice) per proof, not 100,000


def test_a_subtree_beyond_the_log_is_refused() -> None:
    cache = cache_over(leaves_of(10), block_level=2)
    with pytest.raises(ValueError, match="not all in the log"):
        inclusion_path(cache, 3, 12)
    with pytest.raises(ValueError):
        inclusion_path(cache, 10, 10)
    with pytest.raises(ValueError):
        consistency_path(cache, 0, 10)


class DictStore:
    """Remembered subtree hashes in a dict, as a store would keep them (the contract suite checks the real ones)."""

    def __init__(self) -> None:
        self.hashes: dict[tuple[int, int], bytes] = {}

    def subtree_hashes(self, level: int, start: int, end: int) -> dict[int, bytes]:
        return {s: h for (lv, s), h in self.hashes.items() if lv == level and start <= s < end}

    def add_subtree_hashes(self, level: int, hashes: dict[int, bytes]) -> None:
        for start, value in hashes.items():
            self.hashes.setdefault((level, start), value)


def test_another_process_starts_warm_from_the_remembered_hashes() -> None:
    leaves, store = leaves_of(70_000), DictStore()
    first = SubtreeCache(lambda start, end: leaves[start:end], store)
    assert inclusion_path(first, 40_000, len(leaves)) == merkle.inclusion_proof(leaves, 40_000)
    assert store.hashes  # what it built is remembered
    second = SubtreeCache(lambda start, end: leaves[start:end], store)  # a new process, an empty memory
    for index in (3, 40_000, 69_999):
        assert inclusion_path(second, index, len(leaves)) == merkle.inclusion_proof(leaves, index)
        assert consistency_path(second, index + 1, len(leaves)) == merkle.consistency_proof(leaves, index + 1)
    assert second.leaves_read < 6 * 2 * 256  # its proofs read a few partial blocks, never the log


@pytest.mark.parametrize("planted", [(2, 8), (3, 8)], ids=["block", "above-a-block"])
def test_a_head_extended_past_the_signed_one_is_built_from_its_leaves_not_remembered_hashes(
        planted: tuple[int, int]) -> None:
    """A hash remembered for leaves past the last signed head (a store row planted there) would make the new head
    and its consistency proof agree with each other, and not with the log: extending, those leaves are hashed."""
    leaves, store = leaves_of(16), DictStore()
    store.hashes[planted] = b"\x07" * 32
    cache = SubtreeCache(lambda start, end: leaves[start:end], store, block_level=2)
    extending = cache.signed_up_to(6)
    assert range_root(extending, 0, 16) == merkle.root(leaves)
    assert consistency_path(extending, 6, 16) == merkle.consistency_proof(leaves, 6)


def test_hashes_remembered_under_the_signed_head_are_still_read_from_the_store() -> None:
    leaves, store = leaves_of(4096), DictStore()
    first = SubtreeCache(lambda start, end: leaves[start:end], store)
    assert range_root(first, 0, 4096) == merkle.root(leaves)
    second = SubtreeCache(lambda start, end: leaves[start:end], store)  # a new process
    extending = second.signed_up_to(4000)
    assert range_root(extending, 0, 4096) == merkle.root(leaves)
    assert second.leaves_read <= 256  # the last block, past the signed head: the rest is remembered


class CountingStore(DictStore):
    """A DictStore that counts its queries and writes: on Firestore each is a billed request."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = self.writes = 0

    def subtree_hashes(self, level: int, start: int, end: int) -> dict[int, bytes]:
        self.reads += 1
        return super().subtree_hashes(level, start, end)

    def add_subtree_hashes(self, level: int, hashes: dict[int, bytes]) -> None:
        self.writes += 1
        super().add_subtree_hashes(level, hashes)


def test_a_subtree_ending_at_the_signed_head_is_read_from_the_store_and_only_the_new_leaves_hashed() -> None:
    """The signed head vouches for every leaf under it, its last one included: a remembered hash of leaves 0..511
    extends the head signed at 512, and what is read is the 88 leaves past it (as the counter says)."""
    leaves, store = leaves_of(600), DictStore()
    store.hashes[(9, 0)] = merkle.root(leaves[:512])  # remembered, without the blocks under it
    cache = SubtreeCache(lambda start, end: leaves[start:end], store)
    assert range_root(cache.signed_up_to(512), 0, 600) == merkle.root(leaves)
    assert cache.leaves_read == 600 - 512


def test_a_warm_process_asks_the_store_once_per_subtree_and_writes_nothing_back() -> None:
    """A new process proving over remembered subtrees: one query finds the subtree, none repeats it (it is then in
    memory), and nothing already remembered is written again."""
    leaves, store = leaves_of(1024), CountingStore()
    first = SubtreeCache(lambda start, end: leaves[start:end], store)
    assert range_root(first, 0, 1024) == merkle.root(leaves)
    second = SubtreeCache(lambda start, end: leaves[start:end], store)
    store.reads = store.writes = 0
    for _ in range(2):
        assert range_root(second, 0, 1024) == merkle.root(leaves)
    assert (store.reads, store.writes, second.leaves_read) == (1, 0, 0)


def test_blocks_already_hashed_in_memory_are_not_asked_of_the_store_again() -> None:
    """Both halves of a subtree hashed by this process: the subtree over them asks the store for itself only."""
    leaves, store = leaves_of(1024), CountingStore()
    cache = SubtreeCache(lambda start, end: leaves[start:end], store)
    cache(0, 9), cache(512, 9)
    store.reads, read = 0, cache.leaves_read
    assert cache(0, 10) == merkle.root(leaves)
    assert (store.reads, cache.leaves_read - read) == (1, 0)
