"""Sealed messages: only HQ can read them, only the device can have written them, and the
signature binds device, sequence number, kind and topic."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.envelope import SIGNATURE_BYTES, decode_message, open_message, seal_message
from agent.errors import PayloadError
from agent.pki import HqKeys

HQ = HqKeys.generate()
DEVICE_KEY = Ed25519PrivateKey.generate()
TOPIC = "raqib/v1/devices/cam-01/hits"
BODY = {"plate": "12345-B-6", "nested": {"n": [1, 2.5, None]}, "text": "رقيب"}


def seal(
    *,
    device: str = "cam-01",
    seq: int = 7,
    kind: str = "hit",
    topic: str = TOPIC,
    body: dict[str, object] | None = None,
    key: Ed25519PrivateKey = DEVICE_KEY,
    sent_at: float = 1764060000.25,
) -> bytes:
    return seal_message(
        kind,
        device,
        seq,
        topic,
        BODY if body is None else body,
        sent_at=sent_at,
        signing_key=key,
        hq_key=HQ.encryption.public_key(),
    )


def open_(payload: bytes, topic: str = TOPIC, hq: HqKeys = HQ, key: Ed25519PrivateKey = DEVICE_KEY):  # type: ignore[no-untyped-def]
    return open_message(
        decode_message(payload), topic, hq_key=hq.encryption, device_key=key.public_key()
    )


def test_sealed_message_opens_to_what_was_sealed() -> None:
    env = open_(seal())
    assert (env.v, env.kind, env.device, env.seq, env.topic, env.sent_at, env.body) == (
        2,
        "hit",
        "cam-01",
        7,
        TOPIC,
        1764060000.25,
        BODY,
    )


def test_broker_sees_ciphertext_only() -> None:
    payload = seal(body={"plate": "12345-B-6", "case_ref": "case-secret-99"})
    assert b"12345-B-6" not in payload
    assert b"case-secret" not in payload
    ct = base64.b64decode(json.loads(payload)["ct"])
    assert b"12345-B-6" not in ct


def test_sealing_the_same_message_twice_gives_different_ciphertexts() -> None:
    assert seal() != seal()  # a fresh HPKE ephemeral key each time


@settings(max_examples=30, deadline=None)
@given(seq=st.integers(0, 2**63 - 1), sent_at=st.floats(allow_nan=False, allow_infinity=False))
def test_any_valid_seq_and_time_round_trip(seq: int, sent_at: float) -> None:
    env = open_(seal(seq=seq, sent_at=sent_at))
    assert (env.seq, env.sent_at) == (seq, sent_at)


def tampered(payload: bytes, **changes: object) -> bytes:
    obj = json.loads(payload)
    obj.update(changes)
    return json.dumps(obj).encode()


@pytest.mark.security
@pytest.mark.parametrize(
    "changes",
    [{"seq": 8}, {"kind": "ledger"}, {"device": "cam-02"}],
    ids=["seq", "kind", "device"],
)
def test_changed_header_field_does_not_open(changes: dict[str, object]) -> None:
    with pytest.raises(PayloadError, match="cannot be decrypted"):
        open_(tampered(seal(), **changes))


@pytest.mark.security
def test_message_moved_to_another_topic_does_not_open() -> None:
    with pytest.raises(PayloadError, match="cannot be decrypted"):
        open_(seal(), topic="raqib/v1/devices/cam-01/ledger")


@pytest.mark.security
def test_flipped_ciphertext_bit_does_not_open() -> None:
    obj = json.loads(seal())
    ct = bytearray(base64.b64decode(obj["ct"]))
    ct[-20] ^= 1
    with pytest.raises(PayloadError, match="cannot be decrypted"):
        open_(tampered(seal(), ct=base64.b64encode(bytes(ct)).decode()))


@pytest.mark.security
def test_message_sealed_to_another_hq_does_not_open() -> None:
    with pytest.raises(PayloadError, match="cannot be decrypted"):
        open_(seal(), hq=HqKeys.generate())


@pytest.mark.security
def test_forged_signature_is_refused() -> None:
    """Anyone can encrypt to HQ's public key; only the device can sign as the device."""
    forger = Ed25519PrivateKey.generate()
    with pytest.raises(PayloadError, match="signature does not verify against device 'cam-01'"):
        open_(seal(key=forger))


@pytest.mark.security
def test_signature_covers_the_body() -> None:
    """A party that could decrypt (a compromised HQ key) still cannot alter what a device said."""
    import agent.envelope as env

    ctx = env.context("hit", "cam-01", 7, TOPIC)
    content = env._dumps({"sent_at": 1.0, "body": BODY})
    signature = DEVICE_KEY.sign(b"raqib-sign-v2\x00" + ctx + b"\x00" + content)
    forged = env._dumps({"sent_at": 1.0, "body": {**BODY, "plate": "99999-A-1"}})
    ct = env._SUITE.encrypt(
        signature + forged, HQ.encryption.public_key(), info=b"raqib-seal-v2\x00" + ctx
    )
    payload = tampered(seal(), ct=base64.b64encode(ct).decode())
    with pytest.raises(PayloadError, match="signature does not verify"):
        open_(payload)
    assert len(signature) == SIGNATURE_BYTES


@pytest.mark.security
def test_unsealed_plain_json_of_the_old_format_is_refused() -> None:
    old = {"v": 1, "alg": "none", "kind": "hit", "device": "cam-01", "seq": 1, "body": {}}
    with pytest.raises(PayloadError, match="version 1 is not supported"):
        decode_message(json.dumps(old).encode())
