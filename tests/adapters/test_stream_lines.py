"""A provider's server-sent events split into lines from its body's reads, wherever the reads cut them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from creditflow.adapters.ai.openai_compatible import lines_of

LINES = st.lists(st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))), max_size=8)


@given(LINES, st.sampled_from(["\n", "\r\n", "\r"]), st.booleans(), st.data())
def test_lines_are_the_same_wherever_the_reads_cut_the_body(lines: list[str], end: str, ended: bool,
                                                            data: st.DataObject) -> None:
    """Cut mid-line, between a CR and its LF, inside a character of several bytes: the same lines come out, an
    unended last line too."""
    body = (end.join(lines) + (end if ended and lines else "")).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=6)))
    reads = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    expected = lines if ended or not lines or lines[-1] else lines[:-1]  # an empty last line is no line
    assert list(lines_of(reads)) == expected


def test_events_come_out_line_by_line_as_each_read_ends_them() -> None:
    reads = iter([b"data: {\"a\": 1}\r\n\r\ndata: {\"b\"", b": 2}\r", b"\n\r\n"])
    lines = lines_of(reads)
    assert [next(lines), next(lines)] == ['data: {"a": 1}', ""]  # out before the next read is asked for
    assert list(lines) == ['data: {"b": 2}', ""]
