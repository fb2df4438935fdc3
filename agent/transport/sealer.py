"""The device's side of the envelope: seal what it sends, verify what HQ acknowledges."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.envelope import decode_ack, seal_message
from agent.pki import HqPublicKeys


class Sealer:
    """Seals messages of one device to HQ and checks HQ's acks; pure apart from the clock."""

    __slots__ = ("_clock", "_hq", "_key", "device_id")

    def __init__(
        self,
        device_id: str,
        signing_key: Ed25519PrivateKey,
        hq: HqPublicKeys,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.device_id = device_id
        self._key = signing_key
        self._hq = hq
        self._clock = clock

    def seal(self, kind: str, seq: int, topic: str, body: dict[str, Any]) -> bytes:
        """Wire bytes of one message; raises PayloadError if it cannot be sent (too large)."""
        return seal_message(
            kind,
            self.device_id,
            seq,
            topic,
            body,
            sent_at=self._clock(),
            signing_key=self._key,
            hq_key=self._hq.encryption,
        )

    def maker(self, kind: str, topic: str, body: dict[str, Any]) -> Callable[[int], bytes]:
        """``make_payload`` for ``Outbox.put``: seals once the sequence number is known."""
        return lambda seq: self.seal(kind, seq, topic, body)

    @property
    def hq_signing_key(self) -> Ed25519PublicKey:
        """HQ's public signing key: acks, commands."""
        return self._hq.signing

    def open_ack(self, payload: bytes | bytearray) -> list[int]:
        """Sequence numbers of a genuine HQ ack for this device; PayloadError otherwise."""
        return decode_ack(payload, self.device_id, self._hq.signing)
