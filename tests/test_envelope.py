"""The wire envelope: what a device sends and what HQ refuses, with the reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.envelope import (
    MAX_MESSAGE_BYTES,
    Envelope,
    decode_ack,
    decode_message,
    encode_ack,
    encode_message,
)
from agent.errors import PayloadError

BODY = {"plate": "12345-B-6", "nested": {"n": [1, 2.5, None]}, "text": "رقيب"}


def envelope_dict(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "v": 1,
        "alg": "none",
        "kind": "hit",
        "device": "cam-01",
        "seq": 7,
        "sent_at": 1764060000.25,
        "body": BODY,
    }
    base.update(changes)
    return base


def raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_encoded_message_decodes_to_the_same_fields() -> None:
    payload = encode_message("hit", "cam-01", 7, BODY, 1764060000.25)
    assert decode_message(payload) == Envelope(1, "none", "hit", "cam-01", 7, 1764060000.25, BODY)


def test_wire_format_is_the_documented_json() -> None:
    payload = encode_message("hit", "cam-01", 7, {"a": 1}, 1.5)
    assert json.loads(payload) == {
        "v": 1,
        "alg": "none",
        "kind": "hit",
        "device": "cam-01",
        "seq": 7,
        "sent_at": 1.5,
        "body": {"a": 1},
    }


@given(seq=st.integers(0, 2**63 - 1), sent_at=st.floats(allow_nan=False, allow_infinity=False))
def test_any_valid_seq_and_time_round_trip(seq: int, sent_at: float) -> None:
    env = decode_message(encode_message("status", "cam-01", seq, {}, sent_at))
    assert (env.seq, env.sent_at) == (seq, sent_at)


def test_oversized_message_is_refused_before_parsing() -> None:
    payload = b"{" + b" " * MAX_MESSAGE_BYTES + b"}"
    with pytest.raises(PayloadError, match="more than"):
        decode_message(payload)


def test_encoder_refuses_a_message_the_decoder_would_refuse() -> None:
    with pytest.raises(PayloadError, match="more than"):
        encode_message("hit", "cam-01", 1, {"blob": "x" * MAX_MESSAGE_BYTES}, 0.0)
    with pytest.raises(PayloadError, match="out of range"):
        encode_message("hit", "cam-01", -1, {}, 0.0)
    with pytest.raises(PayloadError, match="JSON"):
        encode_message("hit", "cam-01", 1, {"x": float("nan")}, 0.0)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"v": 1, "v": 1}', "duplicated key"),
        (b'{"v": NaN}', "non-JSON number"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"v": 1' + b"0" * 5000 + b"}", "not acceptable JSON"),
    ],
)
def test_unparseable_payload_is_refused_with_its_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        decode_message(payload)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"v": 2}, "version 2 is not supported"),
        ({"v": "1"}, "'v' missing or not an integer"),
        ({"v": None}, "'v' missing"),
        ({"alg": "HPKE-9"}, "algorithm 'HPKE-9' is not supported"),
        ({"alg": 1}, "'alg' missing or not a string"),
        ({"kind": ""}, "'kind' has an invalid value"),
        ({"kind": 3}, "'kind' missing or not a string"),
        ({"device": "CAM/../x"}, "'device' has an invalid value"),
        ({"seq": -1}, "sequence number -1 is negative"),
        ({"seq": 2**63}, "larger than"),
        ({"seq": 1.0}, "'seq' missing or not an integer"),
        ({"seq": True}, "'seq' missing or not an integer"),
        ({"sent_at": "now"}, "'sent_at' missing or not a number"),
        ({"sent_at": 10**400}, "'sent_at' is out of range"),
        ({"body": []}, "'body' missing or not an object"),
        ({"extra": 1}, "unknown fields"),
    ],
)
def test_malformed_envelope_is_refused_naming_the_field(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(PayloadError, match=reason):
        decode_message(raw(envelope_dict(**changes)))


@pytest.mark.parametrize("field", ["v", "alg", "kind", "device", "seq", "sent_at", "body"])
def test_every_envelope_field_is_required(field: str) -> None:
    obj = envelope_dict()
    del obj[field]
    with pytest.raises(PayloadError, match=f"'{field}' missing"):
        decode_message(raw(obj))


def test_bytearray_payload_is_accepted() -> None:
    payload = bytearray(encode_message("hit", "cam-01", 1, {}, 0.0))
    assert decode_message(payload).seq == 1


def test_ack_round_trips() -> None:
    assert decode_ack(encode_ack([3, 1, 2])) == [3, 1, 2]
    assert json.loads(encode_ack([5])) == {"v": 1, "kind": "ack", "seqs": [5]}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"garbage", "not JSON"),
        (b'{"v": 1, "kind": "ack"}', "'seqs' missing"),
        (b'{"v": 1, "kind": "nack", "seqs": []}', "'kind' is not 'ack'"),
        (b'{"v": 9, "kind": "ack", "seqs": []}', "version 9"),
        (b'{"v": 1, "kind": "ack", "seqs": [1, -2]}', "non-negative integers"),
        (b'{"v": 1, "kind": "ack", "seqs": [true]}', "non-negative integers"),
        (b'{"v": 1, "kind": "ack", "seqs": ["1"]}', "non-negative integers"),
        (b" " * 70_000, "more than"),
    ],
)
def test_malformed_ack_is_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        decode_ack(payload)
