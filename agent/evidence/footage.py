"""What HQ stores footage in, and one footage file as the auditor reads it.

``FootageStore`` is the interface ``raqib upload`` and ``raqib verify`` use:
a directory (``hq_store.DirFootageStore``) or an S3-compatible object store
(``s3_store.S3FootageStore``). Both confirm a segment by the SHA-256 of what
they hold, computed from the stored bytes, never from what was sent.

``Footage`` is one file to audit, wherever it lies: ``LocalFootage`` (a path)
or an object in the S3 store. Reading one raises OSError or StorageError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.evidence.store import sha256_file


class Footage(Protocol):
    """One footage file to audit."""

    @property
    def label(self) -> str:
        """How the auditor's output names it (a path, ``s3://bucket/key``)."""
        ...

    @property
    def name(self) -> str:
        """Its file name (``{device}_{segment}_{time}.rqseg`` for a segment)."""
        ...

    def head(self, size: int) -> bytes:
        """Its first ``size`` bytes (fewer if it is shorter)."""
        ...

    def sha256(self) -> str:
        """SHA-256 (hex) of all its bytes, read now."""
        ...


@dataclass(frozen=True, slots=True)
class LocalFootage:
    """A footage file on a local (or mounted) file system."""

    path: Path

    @property
    def label(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def head(self, size: int) -> bytes:
        with self.path.open("rb") as handle:
            return handle.read(size)

    def sha256(self) -> str:
        return sha256_file(self.path)


class FootageStore(Protocol):
    """Where HQ keeps uploaded footage: ``{device}/{segment file}`` entries."""

    @property
    def location(self) -> str:
        """Where it is, for messages and the report."""
        ...

    def stored_hash(self, device_id: str, name: str) -> str | None:
        """SHA-256 of the segment as stored, read back now; None if it is not held."""
        ...

    def receive_segment(self, device_id: str, name: str, source: Path, expected: str) -> str:
        """Store ``source`` (resuming an interrupted upload); the SHA-256 of what is held.

        Committed only if that equals ``expected`` (the ledger's hash). Raises
        StorageError if the store refuses or cannot be reached.
        """
        ...

    def held(self, device_id: str | None = None) -> list[Footage]:
        """Every complete footage file held (of one device, or all)."""
        ...

    def close(self) -> None: ...
