"""The wire format: canonical JSON, bundles, and content checks that refuse non-canonical lists."""

from __future__ import annotations

import pytest

from agent.watchlist.content import ListEntry, encode_delta, encode_entries, parse_delta, parse_full
from agent.watchlist.errors import MalformedError, OversizedError
from agent.watchlist.format import (
    MAX_HEADER_BYTES,
    canonical_json,
    decode_bundle,
    encode_bundle,
    parse_json,
)
from agent.watchlist.simulator import AdminSimulator

pytestmark = pytest.mark.security


def test_canonical_json_is_one_spelling() -> None:
    assert canonical_json({"b": 1, "a": ["é", 2]}) == '{"a":["é",2],"b":1}'.encode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"a":1,"a":2}', "duplicate"),
        (b'{"a":1.5}', "non-integer"),
        (b'{"a":NaN}', "non-integer"),
        (b"[1]", "not a JSON object"),
        (b"\xff", "not valid UTF-8"),
    ],
)
def test_ambiguous_json_is_refused(text: bytes, message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        parse_json(text, "doc")


@pytest.mark.parametrize("compress", [True, False])
def test_bundle_round_trips(compress: bool) -> None:
    sim = AdminSimulator()
    signed = decode_bundle(sim.full([ListEntry("AB-123-CD", "stolen")], 3))
    wire = encode_bundle(signed.metadata, signed.signatures, signed.content, compress=compress)
    again = decode_bundle(wire)
    assert (again.metadata, again.signatures, again.content) == (
        signed.metadata,
        signed.signatures,
        signed.content,
    )


def test_header_larger_than_the_limit_is_refused_unread() -> None:
    frame = b"RQWL\x01\x00" + (MAX_HEADER_BYTES + 1).to_bytes(4, "big")
    with pytest.raises(OversizedError):
        decode_bundle(frame)


def test_unknown_metadata_field_is_refused() -> None:
    sim = AdminSimulator()
    wire = sim.full([ListEntry("AB-123-CD", "stolen")], 3)
    tampered = wire.replace(b'"version":3', b'"version":3,"x":1')
    fixed_len = len(tampered) - len(wire)
    header_len = int.from_bytes(wire[6:10], "big") + fixed_len
    tampered = tampered[:6] + header_len.to_bytes(4, "big") + tampered[10:]
    with pytest.raises(MalformedError, match="unknown keys"):
        decode_bundle(tampered)


def test_entries_are_sorted_deduplicated_and_round_trip() -> None:
    entries = [
        ListEntry("ZZ-1", "stolen", "b", 2, 1_900_000_000),
        ListEntry("AA-1", "wanted", "a", 0),
        ListEntry("ZZ-1", "stolen", "c", 3),
    ]
    content = encode_entries(entries)
    assert content == b"AA-1\twanted\ta\t0\t0\nZZ-1\tstolen\tc\t3\t0\n"
    table = parse_full(content)
    assert list(table.entries()) == [entries[1], entries[2]]


@pytest.mark.parametrize(
    "content",
    [
        b"B\tx\t\t1\t0\nA\tx\t\t1\t0\n",  # not sorted
        b"A\tx\t\t1\t0\nA\tx\t\t1\t0\n",  # duplicate
        b"a\tx\t\t1\t0\n",  # not canonical plate
        b"A\t\t\t1\t0\n",  # empty reason
        b"A\tx\t\t01\t0\n",  # leading zero
        b"A\tx\t\t1\n",  # missing field
        b"A\tx\t\t1\t0\t9\n",  # extra field
        b"A\tx\t\t1\t0",  # no final newline
        b"A\tx\r\t\t1\t0\n",  # control character
        b"A\tx\t\t1\tz\n",  # not a number
        b"ABCDEFGHIJKLMNOPQ\tx\t\t1\t0\n",  # plate too long
        b"A\t\xff\t\t1\t0\n",  # not UTF-8
    ],
)
def test_non_canonical_content_is_refused(content: bytes) -> None:
    with pytest.raises(MalformedError):
        parse_full(content)


@pytest.mark.parametrize(
    "content",
    [
        b"-\tB\n-\tA\n",  # not sorted
        b"*\tA\n",  # unknown op
        b"+\tA\tx\t\t1\n",  # broken entry
        b"-\tA",  # no newline
    ],
)
def test_malformed_delta_is_refused(content: bytes) -> None:
    with pytest.raises(MalformedError):
        parse_delta(content)


def test_delta_cannot_remove_and_add_one_plate() -> None:
    with pytest.raises(MalformedError, match="both removed and added"):
        encode_delta(["A"], [ListEntry("A", "x")])
