"""The device's evidence ledger: a signed hash chain in SQLite, and each segment's upload state.

Every entry (``agent.evidence.entry``) is appended in one ``BEGIN IMMEDIATE``
transaction that reads the last entry's hash and writes the next, so two
processes (the daemon and ``raqib upload``) can never fork the chain; commits
use ``synchronous=FULL`` so an entry ``append`` returned from survives a power
cut. After the commit the entry is handed to ``publish`` (the daemon puts it in
the durable outbox as kind ``ledger``); one that could not be handed over stays
marked unpublished and ``publish_pending`` tries again later.

The ``segments`` table is the device's list of its footage files and where each
is: ``local`` (never uploaded: never deleted), ``uploaded`` (HQ confirmed the
hash; may be deleted to make room), ``deleted``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import PayloadError, StorageError
from agent.evidence.entry import (
    ALG,
    GENESIS,
    TYPE_ACTION,
    TYPE_SEGMENT,
    VERSION,
    entry_hash,
    sign_entry,
)
from agent.evidence.sealing import canonical_json
from agent.reads import GnssFix

log = logging.getLogger(__name__)

Publish = Callable[[dict[str, Any]], None]

STATE_LOCAL: Final = "local"
STATE_UPLOADED: Final = "uploaded"
STATE_DELETED: Final = "deleted"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS segments (
    number INTEGER PRIMARY KEY,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    entry_seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    uploaded_at REAL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A closed segment as the recorder reports it to the ledger."""

    number: int
    recording: str
    part: int
    file: str
    start: float
    end: float
    frames: int
    sha256: str
    size: int
    flags: tuple[str, ...] = ()
    gnss: GnssFix | None = None


@dataclass(frozen=True, slots=True)
class LocalSegment:
    number: int
    file: str
    sha256: str
    size: int
    state: str


def _gnss_json(fix: GnssFix | None) -> dict[str, float] | None:
    if fix is None:
        return None
    return {
        "lat": round(fix.lat, 7),
        "lon": round(fix.lon, 7),
        "accuracy_m": round(fix.accuracy_m, 2),
        "timestamp": round(fix.timestamp, 3),
    }


class Ledger:
    """Append-only signed chain of evidence entries, stored on the device."""

    def __init__(
        self,
        path: Path,
        device_id: str,
        signing_key: Ed25519PrivateKey | None,
        *,
        officer: str = "",
        publish: Publish | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open (or create) the ledger file; raises StorageError if it cannot be opened.

        Without ``signing_key`` the ledger is read-only for entries (``raqib upload``).
        """
        self.path = path
        self.device_id = device_id
        self.officer = officer
        self._key = signing_key
        self._publish = publish
        self._clock = clock
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db: sqlite3.Connection | None = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"evidence ledger {path}: cannot open: {exc}") from exc
        self.pending_publish = self.unpublished() > 0
        """True while some entry could not be handed to ``publish``: ``publish_pending`` retries."""

    def set_publisher(self, publish: Publish | None) -> None:
        self._publish = publish

    @contextmanager
    def _write(self, operation: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                raise RuntimeError("ledger is closed")
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(
                    f"evidence ledger {self.path}: cannot {operation}: {exc}"
                ) from exc

    def _read(self, query: str, *args: object) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._db is None:
                raise RuntimeError("ledger is closed")
            try:
                return self._db.execute(query, args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"evidence ledger {self.path}: cannot read: {exc}") from exc

    # -- numbering ----------------------------------------------------------------

    def take_segment_number(self) -> int:
        """A segment number never used before on this device (survives restarts)."""
        with self._write("number a segment") as db:
            row = db.execute("SELECT value FROM counters WHERE name='segment'").fetchone()
            number = int(row[0]) if row else 1
            db.execute(
                "INSERT OR REPLACE INTO counters(name, value) VALUES ('segment', ?)", (number + 1,)
            )
        return number

    # -- appending -------------------------------------------------------------------

    def _append(
        self, kind: str, payload: dict[str, Any], segment: SegmentInfo | None
    ) -> dict[str, Any]:
        with self._write("append an entry") as db:
            last = db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
            content = {
                "v": VERSION,
                "alg": ALG,
                "device": self.device_id,
                "seq": seq,
                "at": round(self._clock(), 3),
                "prev": prev,
                "officer": self.officer,
                "type": kind,
                kind: payload,
            }
            if self._key is None:
                raise RuntimeError("ledger opened without the device key cannot append")
            body = sign_entry(content, self._key)
            db.execute(
                "INSERT INTO entries(seq, hash, body) VALUES (?, ?, ?)",
                (seq, entry_hash(body), canonical_json(body).decode("utf-8")),
            )
            if segment is not None:
                db.execute(
                    "INSERT OR REPLACE INTO segments(number, file, sha256, size, entry_seq, state)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (segment.number, segment.file, segment.sha256, segment.size, seq, STATE_LOCAL),
                )
        self._hand_over(seq, body)
        return body

    def add_segment(self, info: SegmentInfo) -> dict[str, Any]:
        """Append the entry of a closed segment; returns the signed entry."""
        payload = {
            "number": info.number,
            "recording": info.recording,
            "part": info.part,
            "file": info.file,
            "start": round(info.start, 3),
            "end": round(info.end, 3),
            "frames": info.frames,
            "sha256": info.sha256,
            "size": info.size,
            "gnss": _gnss_json(info.gnss),
            "flags": sorted(info.flags),
        }
        return self._append(TYPE_SEGMENT, payload, info)

    def add_action(
        self, name: str, by: str, detail: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Append an officer's or the device's action (record_start, watchlist_applied, ...)."""
        return self._append(TYPE_ACTION, {"name": name, "by": by, "detail": detail or {}}, None)

    # -- publishing ------------------------------------------------------------------

    def _hand_over(self, seq: int, body: dict[str, Any]) -> bool:
        if self._publish is None:
            return False
        try:
            self._publish(body)
        except (StorageError, PayloadError) as exc:
            log.error("ledger entry %d not yet queued for HQ, will retry: %s", seq, exc)
            self.pending_publish = True
            return False
        with self._write("mark an entry published") as db:
            db.execute("UPDATE entries SET published=1 WHERE seq=?", (seq,))
        return True

    def publish_pending(self) -> int:
        """Hand every not yet published entry to ``publish`` again; returns how many went."""
        if self._publish is None:
            return 0
        sent = 0
        self.pending_publish = False
        for seq, body in self._read("SELECT seq, body FROM entries WHERE published=0 ORDER BY seq"):
            if not self._hand_over(int(seq), json.loads(body)):
                break
            sent += 1
        return sent

    # -- reading ---------------------------------------------------------------------

    def entries(self, after: int = 0) -> list[dict[str, Any]]:
        rows = self._read("SELECT body FROM entries WHERE seq > ? ORDER BY seq", after)
        return [json.loads(row[0]) for row in rows]

    def unpublished(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM entries WHERE published=0")[0][0])

    def segments(self, state: str | None = None) -> list[LocalSegment]:
        """Footage files the ledger knows, oldest first, optionally in one state."""
        query = "SELECT number, file, sha256, size, state FROM segments"
        rows = (
            self._read(query + " WHERE state=? ORDER BY number", state)
            if state
            else self._read(query + " ORDER BY number")
        )
        return [LocalSegment(int(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4])) for r in rows]

    def set_state(self, number: int, state: str) -> None:
        with self._write("record a segment's state") as db:
            db.execute(
                "UPDATE segments SET state=?, uploaded_at=COALESCE(uploaded_at, ?) WHERE number=?",
                (state, self._clock() if state == STATE_UPLOADED else None, number),
            )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
