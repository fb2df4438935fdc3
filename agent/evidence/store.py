"""The device's evidence directory: crash-safe segment files, a size limit, and retention.

A segment is written as ``NAME.partial``, fsynced, renamed to ``NAME`` and the
directory fsynced, so a power cut leaves either a whole sealed file or a
``.partial``. At start-up each left-over ``.partial`` is sealed: cut back to its
last whole encrypted chunk, fsynced and renamed; the caller records it in the
ledger as truncated at power loss.

``reserve(n)`` is asked before every write: it refuses (``StorageFullError``)
when the directory would pass ``max_bytes`` or the disk would keep less than
``min_free_bytes``. ``margin_bytes`` of the limit is kept back for finishing the
segment being written, so a full disk still ends that segment properly.
Retention (``make_room``) deletes only files the caller says HQ already holds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.errors import StorageError
from agent.evidence.errors import SegmentFormatError, StorageFullError
from agent.evidence.sealing import SegmentHeader, parse_header, whole_chunks_length

log = logging.getLogger(__name__)

SUFFIX: Final = ".rqseg"
PARTIAL: Final = ".partial"
_NAME_RE = re.compile(
    r"^(?P<device>[a-z0-9][a-z0-9-]{1,62})_(?P<number>\d{8})_\d{8}T\d{6}Z\.rqseg$"
)


def segment_name(device: str, number: int, started_at: float) -> str:
    """``cam-01_00000012_20261125T084950Z.rqseg``: device, segment number, UTC start."""
    import datetime as dt

    stamp = dt.datetime.fromtimestamp(started_at, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{device}_{number:08d}_{stamp}{SUFFIX}"


def parse_segment_name(name: str) -> tuple[str, int] | None:
    """(device, segment number) a file name claims, or None if it is not a segment name."""
    match = _NAME_RE.fullmatch(name)
    if match is None:
        return None
    return match["device"], int(match["number"])


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _du(root: Path) -> int:
    total = 0
    for path in root.iterdir():
        try:
            total += path.stat().st_size
        except OSError:
            continue  # deleted meanwhile
    return total


@dataclass(frozen=True, slots=True)
class SealedLeftover:
    """A ``.partial`` found at start-up, now sealed under its final name."""

    path: Path
    header: SegmentHeader | None
    sha256: str
    size: int


class EvidenceDir:
    """Where the device keeps sealed segments, with a size limit checked before each write."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = 0,
        min_free_bytes: int = 0,
        margin_bytes: int = 2 * 2**20,
        free_bytes: Callable[[Path], int] | None = None,
    ) -> None:
        """``max_bytes`` 0 means no limit of our own (the disk's free space still counts)."""
        self.root = root
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.margin_bytes = margin_bytes
        self._free_bytes = free_bytes or (lambda p: shutil.disk_usage(p).free)
        self._lock = threading.Lock()
        self.on_full: Callable[[int], int] | None = None
        """Retention hook: asked to free ``n`` bytes; returns how many files it deleted."""
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"evidence directory {root}: {exc.strerror}") from exc
        self.used_bytes = _du(root)

    # -- space -----------------------------------------------------------------------

    def reserve(self, nbytes: int, finishing: bool = False) -> None:
        """Count ``nbytes`` about to be written; raises StorageFullError to refuse them.

        When refused, the usage is counted again from the disk (``raqib upload``
        in another process may have deleted files), then ``on_full(nbytes)``
        (retention) may delete files HQ already holds; if it deleted any, the
        reservation is tried once more.
        """
        if self._fits(nbytes, finishing):
            return
        self.rescan()
        if self._fits(nbytes, finishing):
            return
        if self.on_full is not None:
            self.on_full(nbytes)
        self._try_reserve(nbytes, finishing)  # StorageFullError if there is still no room

    def _fits(self, nbytes: int, finishing: bool) -> bool:
        try:
            self._try_reserve(nbytes, finishing)
        except StorageFullError:
            return False
        return True

    def rescan(self) -> None:
        """Count the directory's bytes again from the disk."""
        with self._lock:
            self.used_bytes = _du(self.root)

    def _try_reserve(self, nbytes: int, finishing: bool = False) -> None:
        margin = 0 if finishing else self.margin_bytes
        with self._lock:
            if self.max_bytes and self.used_bytes + nbytes > self.max_bytes - margin:
                raise StorageFullError(
                    f"evidence directory {self.root} reached its limit of {self.max_bytes} bytes"
                )
            if self.min_free_bytes:
                free = self._free_bytes(self.root)
                if free - nbytes < self.min_free_bytes - margin:
                    raise StorageFullError(
                        f"disk under {self.root} has {free // 2**20} MiB free, "
                        f"under the {self.min_free_bytes // 2**20} MiB kept free"
                    )
            self.used_bytes += nbytes

    def room_for(self, nbytes: int) -> bool:
        """Whether a new segment of about ``nbytes`` could start now."""
        if not self._fits(nbytes, False):
            return False
        with self._lock:
            self.used_bytes -= nbytes
        return True

    def make_room(
        self, nbytes: int, deletable: list[str], on_deleted: Callable[[str], None]
    ) -> int:
        """Delete files from ``deletable`` (already at HQ, oldest first) until ``nbytes`` fit.

        Returns how many files were deleted. Files not in ``deletable`` are never touched.
        """
        deleted = 0
        for name in deletable:
            if self.room_for(nbytes):
                break
            path = self.root / name
            size = path.stat().st_size if path.exists() else 0
            path.unlink(missing_ok=True)
            with self._lock:
                self.used_bytes -= size
            on_deleted(name)
            deleted += 1
            log.info("evidence retention: deleted %s (already held by HQ)", name)
        if deleted:
            fsync_dir(self.root)
        return deleted

    def forget(self, name: str) -> None:
        """Delete one file the caller knows HQ holds (upload confirmed)."""
        path = self.root / name
        size = path.stat().st_size if path.exists() else 0
        path.unlink(missing_ok=True)
        fsync_dir(self.root)
        with self._lock:
            self.used_bytes -= size

    # -- files -----------------------------------------------------------------------

    def create_partial(self, name: str) -> tuple[Path, int]:
        path = self.root / (name + PARTIAL)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot create segment {path}: {exc.strerror}") from exc
        return path, fd

    def commit(self, partial: Path) -> Path:
        """Rename a finished (fsynced) ``.partial`` to its final name and fsync the directory."""
        final = partial.with_name(partial.name.removesuffix(PARTIAL))
        try:
            partial.replace(final)
            fsync_dir(self.root)
        except OSError as exc:
            raise StorageError(f"cannot commit segment {final}: {exc.strerror}") from exc
        return final

    def leftovers(self) -> list[Path]:
        return sorted(self.root.glob("*" + SUFFIX + PARTIAL))

    def seal_leftover(self, partial: Path) -> SealedLeftover:
        """Cut a ``.partial`` back to whole chunks, fsync, rename; hash it.

        The device cannot check the chunks (their key is wrapped to HQ), so the
        cut is structural: the header and every whole chunk are kept.
        """
        data = partial.read_bytes()
        header: SegmentHeader | None
        try:
            header, offset = parse_header(data)
            keep = whole_chunks_length(len(data), offset, header.chunk)
        except SegmentFormatError:
            header, keep = None, len(data)  # not even a whole header: kept as found
        if keep != len(data):
            with partial.open("r+b") as handle:
                handle.truncate(keep)
                handle.flush()
                os.fsync(handle.fileno())
            with self._lock:
                self.used_bytes -= len(data) - keep
        final = self.commit(partial)
        return SealedLeftover(final, header, hashlib.sha256(data[:keep]).hexdigest(), keep)
