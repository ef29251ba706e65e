"""A task's token stream on the local tree: pieces batched to at most one write per STREAM_INTERVAL, keyed in order,
then a final piece."""

from __future__ import annotations

from pathlib import Path

from creditflow.adapters.local.tree import LocalTree
from creditflow.services.task_runs import STREAM_INTERVAL, StreamWriter


def test_pieces_are_written_once_an_interval_has_passed_and_the_final_piece_carries_the_rest(tmp_path: Path) -> None:
    """A token arriving exactly STREAM_INTERVAL after the last write is written with those before it; one arriving
    sooner waits, and the final piece's write takes what is still pending."""
    start = 0.0625  # a float that adding STREAM_INTERVAL to and taking away gives the interval back exactly
    tree, clock = LocalTree(tmp_path / "t.sqlite3"), [start]
    writer = StreamWriter(tree, "u", "t", now=lambda: clock[0])
    writer.add("a")  # the first token: nothing was written before it
    clock[0] += STREAM_INTERVAL / 2
    writer.add("b")
    assert tree.get("/streams/u/t") == {"000001": {"text": "a"}}
    clock[0] = start + STREAM_INTERVAL  # exactly the interval since the first write
    writer.add("c")
    assert tree.get("/streams/u/t") == {"000001": {"text": "a"}, "000002": {"text": "bc"}}
    writer.add("d")
    writer.final({"usage": {"promptTokens": 1}})
    assert tree.get("/streams/u/t") == {"000001": {"text": "a"}, "000002": {"text": "bc"}, "000003": {"text": "d"},
                                        "000004": {"final": True, "usage": {"promptTokens": 1}}}
