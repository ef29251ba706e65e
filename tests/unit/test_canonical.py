"""Entry bodies are RFC 8785 canonical JSON: the fast path must be byte-identical to the rfc8785 package."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from creditflow.domain.entries import canonical
from creditflow.domain.timefmt import iso, parse_iso

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
                    st.text(st.characters(exclude_categories=("Cs",))))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=20)


@settings(max_examples=500)
@given(st.dictionaries(st.text(max_size=10), values, max_size=8))
def test_canonical_is_byte_identical_to_rfc8785(document: dict) -> None:
    assert canonical(document) == rfc8785.dumps(document)


def test_non_bmp_keys_sort_by_utf16_like_rfc8785() -> None:
    document = {"\U0001f600": 1, "\ufb33": 2, "a": 3}
    assert canonical(document) == rfc8785.dumps(document)
    assert canonical(document).index("\ufb33".encode()) > canonical(document).index("\U0001f600".encode())


def test_floats_and_lone_surrogates_are_not_taken_by_the_fast_path() -> None:
    assert canonical({"x": 1.5}) == rfc8785.dumps({"x": 1.5})
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical({"x": "\ud800"})


def test_timestamps_round_trip() -> None:
    text = "2026-01-02T03:04:05.000006Z"
    assert iso(parse_iso(text)) == text


ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=11))]


@given(st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=st.sampled_from(ZONES)))
def test_timestamps_are_utc_isoformat_with_z(moment: datetime) -> None:
    """`iso` formats by hand for speed: it must write what isoformat() writes of the same moment in UTC."""
    assert iso(moment) == moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    assert parse_iso(iso(moment)) == moment
