"""The wire envelope's clear parts: what HQ refuses before decrypting, and acks, with the reason."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.envelope import (
    ALG_SEALED,
    MAX_MESSAGE_BYTES,
    Header,
    decode_ack,
    decode_message,
    encode_ack,
    seal_message,
)
from agent.errors import PayloadError
from agent.pki import HqKeys

HQ = HqKeys.generate()
DEVICE_KEY = Ed25519PrivateKey.generate()
TOPIC = "raqib/v1/devices/cam-01/hits"


def sealed(**overrides: object) -> bytes:
    args: dict[str, object] = {
        "kind": "hit",
        "device_id": "cam-01",
        "seq": 7,
        "topic": TOPIC,
        "body": {"plate": "12345-B-6"},
        "sent_at": 1764060000.25,
    }
    args.update(overrides)
    return seal_message(
        **args,  # type: ignore[arg-type]
        signing_key=DEVICE_KEY,
        hq_key=HQ.encryption.public_key(),
    )


def header_dict(**changes: object) -> dict[str, object]:
    base: dict[str, object] = json.loads(sealed())
    base.update(changes)
    return base


def raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_wire_format_is_the_documented_json_with_ciphertext() -> None:
    obj = json.loads(sealed())
    assert set(obj) == {"v", "alg", "kind", "device", "seq", "ct"}
    assert (obj["v"], obj["alg"], obj["kind"], obj["device"], obj["seq"]) == (
        2,
        "hpke-x25519-sha256-aes128gcm+ed25519",
        "hit",
        "cam-01",
        7,
    )
    ct = base64.b64decode(obj["ct"])
    assert len(ct) >= 32 + 64 + 16  # HPKE enc, signature, GCM tag


def test_header_decodes_without_any_key() -> None:
    header = decode_message(sealed())
    assert isinstance(header, Header)
    assert (header.v, header.alg, header.kind, header.device, header.seq) == (
        2,
        ALG_SEALED,
        "hit",
        "cam-01",
        7,
    )


def test_oversized_message_is_refused_before_parsing() -> None:
    payload = b"{" + b" " * MAX_MESSAGE_BYTES + b"}"
    with pytest.raises(PayloadError, match="more than"):
        decode_message(payload)


def test_sealer_refuses_a_message_the_decoder_would_refuse() -> None:
    with pytest.raises(PayloadError, match="more than"):
        sealed(body={"blob": "x" * MAX_MESSAGE_BYTES})
    with pytest.raises(PayloadError, match="out of range"):
        sealed(seq=-1)
    with pytest.raises(PayloadError, match="JSON"):
        sealed(body={"x": float("nan")})
    with pytest.raises(PayloadError, match="device id"):
        sealed(device_id="CAM/01")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"v": 2, "v": 2}', "duplicated key"),
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
        ({"v": 1}, "version 1 is not supported"),
        ({"v": 3}, "version 3 is not supported"),
        ({"v": "2"}, "'v' missing or not an integer"),
        ({"v": None}, "'v' missing"),
        ({"alg": "none"}, "algorithm 'none' is not supported"),
        ({"alg": 1}, "'alg' missing or not a string"),
        ({"kind": ""}, "'kind' has an invalid value"),
        ({"kind": 3}, "'kind' missing or not a string"),
        ({"device": "CAM/../x"}, "'device' has an invalid value"),
        ({"seq": -1}, "sequence number -1 is negative"),
        ({"seq": 2**63}, "larger than"),
        ({"seq": 1.0}, "'seq' missing or not an integer"),
        ({"seq": True}, "'seq' missing or not an integer"),
        ({"ct": 5}, "'ct' missing or not a string"),
        ({"ct": "not base64!"}, "'ct' is not base64"),
        ({"body": {}}, "unknown fields"),
    ],
)
def test_malformed_envelope_is_refused_naming_the_field(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(PayloadError, match=reason):
        decode_message(raw(header_dict(**changes)))


@pytest.mark.parametrize("field", ["v", "alg", "kind", "device", "seq", "ct"])
def test_every_envelope_field_is_required(field: str) -> None:
    obj = header_dict()
    del obj[field]
    with pytest.raises(PayloadError, match=f"'{field}' missing"):
        decode_message(raw(obj))


def test_bytearray_payload_is_accepted() -> None:
    assert decode_message(bytearray(sealed())).seq == 7


# -- acks -------------------------------------------------------------------------


def ack(seqs: list[int], device: str = "cam-01") -> bytes:
    return encode_ack(device, seqs, HQ.signing)


def test_ack_round_trips_and_is_signed() -> None:
    assert decode_ack(ack([3, 1, 2]), "cam-01", HQ.signing.public_key()) == [3, 1, 2]
    obj = json.loads(ack([5]))
    assert {k: obj[k] for k in ("v", "alg", "kind", "device", "seqs")} == {
        "v": 2,
        "alg": "ed25519",
        "kind": "ack",
        "device": "cam-01",
        "seqs": [5],
    }
    assert len(base64.b64decode(obj["sig"])) == 64


def ack_with(**changes: object) -> bytes:
    obj = json.loads(ack([1, 2]))
    obj.update(changes)
    return raw(obj)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"garbage", "not JSON"),
        (ack_with(seqs=None), "'seqs' missing"),
        (ack_with(kind="nack"), "'kind' is not 'ack'"),
        (ack_with(v=9), "version 9"),
        (ack_with(alg="none"), "algorithm 'none'"),
        (ack_with(seqs=[1, -2]), "non-negative integers"),
        (ack_with(seqs=[True]), "non-negative integers"),
        (ack_with(seqs=["1"]), "non-negative integers"),
        (ack_with(extra=1), "unknown fields"),
        (ack_with(sig="@@"), "'sig' is not base64"),
        (b" " * 70_000, "more than"),
    ],
)
def test_malformed_ack_is_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        decode_ack(payload, "cam-01", HQ.signing.public_key())


def test_ack_that_names_other_seqs_than_hq_signed_is_refused() -> None:
    with pytest.raises(PayloadError, match="signature does not verify"):
        decode_ack(ack_with(seqs=[1, 2, 3]), "cam-01", HQ.signing.public_key())


def test_ack_signed_by_anyone_but_hq_is_refused() -> None:
    rogue = encode_ack("cam-01", [1, 2, 3], Ed25519PrivateKey.generate())
    with pytest.raises(PayloadError, match="signature does not verify"):
        decode_ack(rogue, "cam-01", HQ.signing.public_key())


def test_ack_for_another_device_is_refused() -> None:
    with pytest.raises(PayloadError, match="for device 'cam-02'"):
        decode_ack(ack([1], "cam-02"), "cam-01", HQ.signing.public_key())
