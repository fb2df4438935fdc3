"""The device's watchlist: trusted root + cache + the current matcher, and update handling.

:meth:`WatchlistManager.handle_update` is what the MQTT subscription calls with
a payload. It never raises for bad input: every refusal is logged once with its
reason, recorded in the cache for the status report, and returned as an
:class:`UpdateResult` for the caller to publish to HQ; the current list stays.
An accepted update is indexed in memory first, then stored in one
transaction, then the matcher is swapped in one assignment: a reader never
sees half a list, and a failure before the swap changes nothing.

With :class:`~agent.watchlist.devicekeys.DeviceKeys` (every device) the
manager accepts only sealed bundles and its cache is encrypted: it starts
*locked* (no list, ``status()["locked"]``) until :meth:`handle_key` gets HQ's
key message, holds updates that arrive meanwhile, and applies them once unlocked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.errors import StorageError, WatchlistError
from agent.watchlist.atrest import CacheLockedError
from agent.watchlist.cache import WatchlistCache
from agent.watchlist.content import EntryTable
from agent.watchlist.devicekeys import DeviceKeys, redact
from agent.watchlist.errors import CacheTamperedError, ReplayError, WatchlistRefusedError
from agent.watchlist.format import Metadata, Root, decode_bundle
from agent.watchlist.matcher import MAX_CHANGES, EditPolicy, Matcher, MatchPolicy
from agent.watchlist.sealed import NotSealedError, is_sealed, offered, verify_sealed_update
from agent.watchlist.verify import CurrentState, VerifiedUpdate, verify_update

MAX_HELD_UPDATES = 4
"""Updates kept in memory while the cache is locked (the newest win)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """What became of one update payload; ``reason`` is ``"applied"`` or a refusal name."""

    applied: bool
    reason: str
    detail: str
    version: int | None
    """The version the device holds after handling the payload."""
    offered_version: int | None = None
    kind: str | None = None
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class WatchlistManager:
    """Holds the verified list and its matcher; thread-safe for one updater and many readers."""

    def __init__(
        self,
        cache: WatchlistCache,
        *,
        fuzzy: bool = True,
        fuzzy_min_confidence: float = 0.8,
        edits: EditPolicy = "malformed",
        max_changes: int = MAX_CHANGES,
        clock: Callable[[], float] = time.time,
        keys: DeviceKeys | None = None,
    ) -> None:
        """``keys``: accept only sealed bundles and keep ``cache`` (made ``encrypted``) locked
        until HQ's key arrives."""
        if keys is not None and not cache.encrypted:
            raise RuntimeError("a device with watchlist keys needs an encrypted cache")
        self._keys = keys
        self._held: list[bytes] = []
        self._key: bytes | None = None
        self._cache = cache
        self._policy = MatchPolicy(fuzzy, fuzzy_min_confidence, edits, max_changes, clock)
        self._clock = clock
        self._lock = threading.Lock()
        self._matcher = self._policy.matcher()
        self._tampered: str | None = None

    def _index(self, table: EntryTable) -> Matcher:
        return self._policy.indexed(table)

    @classmethod
    def open(cls, path: Path, anchor: Root, **options: Any) -> WatchlistManager:
        """Open the cache at ``path`` and load it (see :meth:`load`); raises StorageError."""
        encrypted = options.get("keys") is not None
        manager = cls(WatchlistCache(path, anchor, encrypted=encrypted), **options)
        manager.load()
        return manager

    @property
    def locked(self) -> bool:
        """True while the device waits for its key from HQ (no list, no alerts)."""
        return self._cache.locked

    def close(self) -> None:
        self._cache.close()

    @property
    def matcher(self) -> Matcher:
        """The current matcher; replaced (never mutated) when an update is applied."""
        return self._matcher

    @property
    def cache(self) -> WatchlistCache:
        return self._cache

    def load(self) -> bool:
        """Load the cached list into the matcher; False (and logged) if the cache was tampered.

        A tampered cache leaves an empty list, reported by :meth:`status` until a
        valid full list arrives. Raises StorageError if the database cannot be read.
        """
        with self._lock:
            if self._cache.locked and not self._unlock_from_grace():
                log.warning(
                    "watchlist locked: waiting for its key from HQ; NO WATCHLIST ALERTS until it "
                    "arrives"
                )
                return True
            return self._load_locked()

    def _load_locked(self) -> bool:
        """:meth:`load` with the lock held."""
        try:
            loaded = self._cache.load()
        except CacheTamperedError as exc:
            self._tampered = redact(str(exc))
            log.error("watchlist cache refused: %s", self._tampered)
            self._cache.record_refusal(exc.reason, self._tampered, self._clock())
            return False
        if loaded is not None:
            self._matcher = self._index(loaded.table)
            release_free_memory()
            log.info("watchlist v%d loaded: %d entries", loaded.metadata.version, len(loaded.table))
        return True

    def _unlock_from_grace(self) -> bool:
        """Grace mode: open the kept key message if it is still within its window."""
        keys = self._keys
        if keys is None or keys.grace is None:
            return False
        try:
            payload = keys.grace.load(self._clock(), keys.grace_s)
            if payload is None:
                return False
            grant, cipher = keys.open(payload)
        except (WatchlistError, StorageError) as exc:
            log.error("watchlist grace key not usable: %s", exc)
            return False
        self._cache.unlock(cipher)
        self._key = grant.key
        log.warning("watchlist unlocked from the grace copy of its key (offline boot)")
        return True

    def handle_key(self, payload: bytes, now: float) -> UpdateResult | None:
        """HQ's key message: unlock the cache, load it, apply held updates; never raises.

        Returns None when nothing changed (the retained key again, an empty message).
        """
        keys = self._keys
        if keys is None or not payload:
            return None
        start = time.perf_counter()
        with self._lock:
            try:
                grant, cipher = keys.open(payload)
            except WatchlistError as exc:
                log.warning("watchlist key refused: %s", exc)
                return UpdateResult(False, _reason(exc), str(exc), self._held_version())
            if not self._cache.locked and grant.key == self._key:
                return None  # the retained key again, at each reconnect
            rekey = not self._cache.locked
            try:
                if rekey:  # HQ replaced the key: keep the list, stored under the new one
                    self._cache.rekey(cipher)
                else:
                    self._cache.unlock(cipher)
            except StorageError as exc:
                log.error("%s", exc)
                return UpdateResult(False, "storage_error", str(exc), self._held_version())
            self._key = grant.key
            self._keep_grace_copy(payload, now)
            if not rekey:
                self._load_locked()
        log.info("watchlist key received from HQ: unlocked")
        held, self._held = self._held, []
        for update in held:
            self.handle_update(update, now)
        version = self._held_version()
        elapsed = (time.perf_counter() - start) * 1000
        return UpdateResult(True, "unlocked", "", version, version, None, elapsed)

    def _keep_grace_copy(self, payload: bytes, now: float) -> None:
        keys = self._keys
        if keys is None or keys.grace is None:
            return
        try:
            keys.grace.save(payload, now)
        except StorageError as exc:
            log.error("watchlist grace key not kept: %s", exc)

    def _held_version(self) -> int | None:
        current = self._cache.current
        return current.metadata.version if current else None

    def _current_state(self) -> CurrentState | None:
        current = self._cache.current
        if current is None:
            return None
        return CurrentState(current.metadata.version, current.table, current.header_sha256)

    def handle_update(self, payload: bytes, now: float) -> UpdateResult:
        """Verify and apply one update payload at time ``now``; never raises for bad input."""
        start = time.perf_counter()
        if self._keys is not None and self._cache.locked:
            self._held = [*self._held, payload][-MAX_HELD_UPDATES:]
            log.info("watchlist update held until the key arrives from HQ")
            return UpdateResult(False, CacheLockedError.reason, "held until the key arrives", None)
        with self._lock:
            held = self._cache.current
            held_version = held.metadata.version if held else None
            del held
            try:
                meta = self._verify_and_apply(payload, now)
            except (WatchlistError, StorageError) as exc:
                return self._refused(exc, payload, held_version, now, start)
            except Exception as exc:  # a bug must not take the daemon down with it
                log.exception("watchlist update failed unexpectedly")
                return self._refused(exc, payload, held_version, now, start)
        if meta.kind == "full":
            release_free_memory()  # the old list and the build temporaries are gone now
        elapsed = (time.perf_counter() - start) * 1000
        log.info(
            "watchlist v%d (%s) applied: %d entries in %.1f ms",
            meta.version,
            meta.kind,
            meta.entry_count,
            elapsed,
        )
        return UpdateResult(True, "applied", "", meta.version, meta.version, meta.kind, elapsed)

    def _verify_and_apply(self, payload: bytes, now: float) -> Metadata:
        """Verify, index (in memory), store (durable), swap; raises WatchlistError, StorageError."""
        state = self._current_state()
        update = self._verify(payload, state, now)
        old = self._matcher
        if update.change is not None and state is not None and old.table is state.table:
            matcher = old.updated(update.table, update.change)
        else:
            matcher = self._index(update.table)
        self._cache.apply(update, now)
        self._matcher = matcher
        self._tampered = None
        return update.metadata

    def _verify(self, payload: bytes, state: CurrentState | None, now: float) -> VerifiedUpdate:
        if self._keys is None:
            return verify_update(payload, self._cache.root, state, now)
        if not is_sealed(payload):
            raise NotSealedError("this device accepts only sealed (encrypted) lists")
        return verify_sealed_update(payload, self._cache.root, state, now, self._keys.kem)

    def _refused(
        self, exc: Exception, payload: bytes, held: int | None, now: float, start: float
    ) -> UpdateResult:
        reason = _reason(exc)
        detail = redact(str(exc))
        duplicate = isinstance(exc, ReplayError) and exc.identical
        if duplicate:
            log.info("watchlist update ignored: %s", detail)
        else:
            log.warning("watchlist update refused (%s): %s", reason, detail)
            try:
                self._cache.record_refusal(reason, detail, now)
            except StorageError as store_exc:
                log.error("%s", store_exc)
        elapsed = (time.perf_counter() - start) * 1000
        offered, kind = _offered(payload)
        return UpdateResult(False, reason, detail, held, offered, kind, elapsed)

    def status(self, now: float) -> dict[str, Any]:
        """Cache status (version, entries, expires_at, stale, last refusal) plus tamper state."""
        status = self._cache.status(now)
        status["cache_tampered"] = self._tampered
        status["locked"] = self._cache.locked
        status["key"] = self.key_state
        return status

    @property
    def key_state(self) -> str:
        """Where the list's key is, in words for ``raqib status``."""
        if self._keys is None:
            return "clear cache"
        if self._cache.locked:
            return "waiting for the key from HQ: no watchlist alerts"
        return "held in memory" if self._keys.grace is None else "grace copy on disk"


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def release_free_memory() -> None:
    """Hand freed heap back to the OS (glibc ``malloc_trim``); a no-op elsewhere.

    Building a million-entry index frees a few hundred megabytes of temporaries
    that glibc would otherwise keep as resident memory on a small board.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _offered(payload: bytes) -> tuple[int | None, str | None]:
    """The version and kind a refused payload claims (unverified, for the report), if readable."""
    if is_sealed(payload):
        return offered(payload)
    try:
        meta = decode_bundle(payload).metadata
    except WatchlistError:
        return None, None
    return meta.version, meta.kind


def _reason(exc: Exception) -> str:
    if isinstance(exc, WatchlistRefusedError):
        return exc.reason
    if isinstance(exc, WatchlistError):
        return "malformed"
    if isinstance(exc, StorageError):
        return "storage_error"
    return "internal_error"
