"""The sealed segment file: footage encrypted at rest, readable by HQ only.

Layout (``docs/evidence.md`` is the reference)::

    b"RAQIBSEG" | u32 big-endian header length | header JSON | chunk 0 | chunk 1 | ...

The header is canonical JSON ``{"v": 1, "alg": ..., "device", "segment",
"recording", "part", "started_at", "chunk", "key"}`` where ``key`` is the
segment's random AES-256 key wrapped to HQ's X25519 key with HPKE (RFC 9180,
base mode, X25519/HKDF-SHA256/AES-128-GCM; ``info`` binds the device id and
segment number). The footage (a fragmented MP4) follows in chunks of ``chunk``
plaintext bytes, each AES-256-GCM with a counter nonce (11-byte big-endian chunk
index, then a final-chunk flag byte) and the SHA-256 of the header as associated
data. Only the last chunk is shorter and carries the final flag, so:

- a file cut at any point still decrypts up to its last whole chunk, and a
  missing final chunk proves the cut (truncation is never silent);
- chunks cannot be reordered, dropped or moved to another segment, and the
  header cannot be edited, without decryption failing.

Everything here is pure (bytes and keys in, bytes or an error out) apart from
``SealedWriter``, which writes to a file descriptor it is given.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import json
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from agent.errors import StorageError
from agent.evidence.errors import SegmentDecryptError, SegmentFormatError, StorageFullError

MAGIC: Final = b"RAQIBSEG"
VERSION: Final = 1
ALG: Final = "aes-256-gcm-chunked+hpke-x25519-sha256-aes128gcm"
TAG_BYTES: Final = 16
DEFAULT_CHUNK: Final = 64 * 1024
MAX_HEADER_BYTES: Final = 4096
_LEN: Final = struct.Struct(">I")
_HEADER_KEYS: Final = frozenset(
    {"v", "alg", "device", "segment", "recording", "part", "started_at", "chunk", "key"}
)
_KEY_LABEL: Final = b"raqib-segment-key-v1\x00"
_SUITE: Final = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)


def canonical_json(obj: object) -> bytes:
    """The one byte form of a JSON value that is hashed or signed: sorted keys, no spaces."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """The clear header of a segment: whose footage it is, and its wrapped key."""

    device: str
    segment: int
    recording: str
    part: int
    started_at: float
    chunk: int
    wrapped_key: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "alg": ALG,
            "device": self.device,
            "segment": self.segment,
            "recording": self.recording,
            "part": self.part,
            "started_at": self.started_at,
            "chunk": self.chunk,
            "key": base64.b64encode(self.wrapped_key).decode("ascii"),
        }

    def encode(self) -> bytes:
        """Magic, length and header: the first bytes of the file."""
        body = canonical_json(self.to_json())
        return MAGIC + _LEN.pack(len(body)) + body


def _key_info(device: str, segment: int) -> bytes:
    return _KEY_LABEL + canonical_json([device, segment])


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def new_header(
    hq_key: X25519PublicKey,
    *,
    device: str,
    segment: int,
    recording: str,
    part: int,
    started_at: float,
    chunk: int = DEFAULT_CHUNK,
) -> tuple[SegmentHeader, bytes]:
    """A fresh random segment key and the header that carries it wrapped to HQ."""
    if chunk < 1024:
        raise RuntimeError("segment chunk size must be at least 1 KiB")
    key = AESGCM.generate_key(bit_length=256)
    wrapped = _SUITE.encrypt(key, hq_key, info=_key_info(device, segment))
    header = SegmentHeader(device, segment, recording, part, round(started_at, 3), chunk, wrapped)
    return header, key


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SegmentFormatError(f"segment header field {key!r} missing or not an integer")
    return value


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value or len(value) > 128:
        raise SegmentFormatError(f"segment header field {key!r} missing or not a short string")
    return value


def _header_object(data: bytes) -> tuple[dict[str, Any], int]:
    if len(data) < len(MAGIC) + _LEN.size or not data.startswith(MAGIC):
        raise SegmentFormatError("not a Raqib sealed segment (bad magic)")
    (length,) = _LEN.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _LEN.size
    if length > MAX_HEADER_BYTES or start + length > len(data):
        raise SegmentFormatError(f"segment header length {length} is out of range")
    try:
        obj = json.loads(data[start : start + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SegmentFormatError("segment header is not JSON") from exc
    if not isinstance(obj, dict) or set(obj) != _HEADER_KEYS:
        raise SegmentFormatError("segment header does not have the expected fields")
    return obj, start + length


def parse_header(data: bytes) -> tuple[SegmentHeader, int]:
    """The header at the start of ``data`` and the offset of the first chunk.

    Raises SegmentFormatError if ``data`` does not start with a valid header.
    """
    obj, offset = _header_object(data)
    if obj["v"] != VERSION or obj["alg"] != ALG:
        raise SegmentFormatError(f"segment format {obj['v']!r}/{obj['alg']!r} is not supported")
    started = obj["started_at"]
    if not isinstance(started, int | float) or isinstance(started, bool):
        raise SegmentFormatError("segment header field 'started_at' is not a number")
    try:
        wrapped = base64.b64decode(_str(obj, "key"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SegmentFormatError("segment header field 'key' is not base64") from exc
    chunk = _int(obj, "chunk")
    if not 1024 <= chunk <= 16 * 2**20:
        raise SegmentFormatError(f"segment chunk size {chunk} is out of range")
    header = SegmentHeader(
        device=_str(obj, "device"),
        segment=_int(obj, "segment"),
        recording=_str(obj, "recording"),
        part=_int(obj, "part"),
        started_at=float(started),
        chunk=chunk,
        wrapped_key=wrapped,
    )
    return header, offset


def whole_chunks_length(data_len: int, offset: int, chunk: int) -> int:
    """The file length that keeps the header and only whole encrypted chunks."""
    sealed = chunk + TAG_BYTES
    return offset + max(0, data_len - offset) // sealed * sealed


@dataclass(frozen=True, slots=True)
class OpenedSegment:
    """A decrypted segment: its header, the MP4 bytes, and whether the file was complete."""

    header: SegmentHeader
    plaintext: bytes
    complete: bool
    chunks: int


def open_segment(data: bytes, hq_key: X25519PrivateKey) -> OpenedSegment:
    """Decrypt a sealed segment with HQ's key, as far as it is intact.

    ``complete`` is False if the file ends without its final chunk (cut at a power
    loss or a full disk): the chunks before the cut are returned. Raises
    SegmentFormatError for a bad header, and SegmentDecryptError if the key does
    not unwrap or a whole chunk before the end fails its tag (the file was altered).
    """
    header, offset = parse_header(data)
    try:
        key = _SUITE.decrypt(
            header.wrapped_key, hq_key, info=_key_info(header.device, header.segment)
        )
    except (InvalidTag, ValueError) as exc:
        raise SegmentDecryptError("segment key does not unwrap with this HQ key") from exc
    aead = AESGCM(key)
    aad = hashlib.sha256(data[:offset]).digest()
    sealed = header.chunk + TAG_BYTES
    out = bytearray()
    index = 0
    pos = offset
    while pos < len(data):
        piece = data[pos : pos + sealed]
        if len(piece) == sealed:
            try:
                out += aead.decrypt(_nonce(index, False), piece, aad)
            except InvalidTag:
                pass
            else:
                index, pos = index + 1, pos + sealed
                continue
        try:
            out += aead.decrypt(_nonce(index, True), piece, aad)
        except InvalidTag as exc:
            if pos + len(piece) >= len(data) and len(piece) < sealed:
                return OpenedSegment(header, bytes(out), False, index)  # cut mid-chunk
            raise SegmentDecryptError(f"segment chunk {index} fails its tag: altered") from exc
        if pos + len(piece) != len(data):
            raise SegmentDecryptError(f"segment has data after its final chunk {index}")
        return OpenedSegment(header, bytes(out), True, index + 1)
    return OpenedSegment(header, bytes(out), False, index)


def _short_write() -> None:
    raise OSError(errno.ENOSPC, "short write")


class SealedWriter:
    """A write-only binary stream that encrypts into a segment file, chunk by chunk.

    PyAV's muxer writes the MP4 into it; every full chunk is sealed and written
    to ``fd`` at once (so a power cut loses at most the chunk being filled), and
    the descriptor is fsynced at most every ``sync_s`` seconds. ``reserve(n)`` is
    asked before each write and raises ``StorageFullError`` to refuse it.
    The SHA-256 of every byte written is kept, so closing needs no re-read.
    """

    def __init__(
        self,
        fd: int,
        header: SegmentHeader,
        key: bytes,
        *,
        reserve: Callable[[int, bool], None],
        sync_s: float = 1.0,
    ) -> None:
        self._fd = fd
        self._aead = AESGCM(key)
        self._chunk = header.chunk
        self._reserve = reserve
        self._sync_s = sync_s
        self._buffer = bytearray()
        self._index = 0
        self._hash = hashlib.sha256()
        self._last_sync = time.monotonic()
        self.size = 0
        self.closed = False
        self.finishing = False
        """Set before closing the muxer: the writes that end the segment may use the margin."""
        head = header.encode()
        self._aad = hashlib.sha256(head).digest()
        self._emit(head)

    # -- the file-object protocol PyAV needs ------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.closed:
            raise RuntimeError("segment writer is closed")
        self._buffer += data
        while len(self._buffer) >= self._chunk:
            # sealed before it leaves the buffer: a refused write keeps its data for finishing
            self._seal(bytes(self._buffer[: self._chunk]), final=False)
            del self._buffer[: self._chunk]
        return len(data)

    def flush(self) -> None:
        """Whole chunks are already written; a partial chunk waits for more data."""

    # -- ours -------------------------------------------------------------------------

    def _seal(self, piece: bytes, final: bool) -> None:
        self._emit(self._aead.encrypt(_nonce(self._index, final), piece, self._aad))
        self._index += 1

    def _emit(self, data: bytes) -> None:
        self._reserve(len(data), self.finishing)
        try:
            if os.write(self._fd, data) != len(data):
                _short_write()
            now = time.monotonic()
            if now - self._last_sync >= self._sync_s:
                os.fsync(self._fd)
                self._last_sync = now
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFullError(f"disk full writing a segment: {exc.strerror}") from exc
            raise StorageError(f"cannot write a segment: {exc.strerror}") from exc
        self._hash.update(data)
        self.size += len(data)

    def finish(self) -> str:
        """Write the final chunk and fsync; returns the SHA-256 (hex) of the whole file."""
        if not self.closed:
            self.closed = True
            while len(self._buffer) > self._chunk:  # left by writes refused on a full disk
                self._seal(bytes(self._buffer[: self._chunk]), final=False)
                del self._buffer[: self._chunk]
            self._seal(bytes(self._buffer), final=True)
            self._buffer.clear()
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise StorageError(f"cannot fsync a segment: {exc.strerror}") from exc
        return self._hash.hexdigest()

    def abandon(self) -> str:
        """Stop without a final chunk (disk full): the file ends at its last whole chunk."""
        self.closed = True
        self._buffer.clear()
        with contextlib.suppress(OSError):  # the caller re-seals and re-hashes the file
            os.fsync(self._fd)
        return self._hash.hexdigest()
