"""Applies watchlist updates arriving over MQTT on their own thread.

Verifying and indexing a million-entry list takes about a second: that must
not stall plate reading nor paho's network thread, so payloads are queued
(bounded; an update that finds the queue full is dropped and logged, the
retained message brings it back at the next connect) and handled here.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from agent.watchlist.manager import UpdateResult, WatchlistManager

log = logging.getLogger(__name__)

MAX_PENDING_UPDATES = 4


class UpdateWorker:
    """Feeds queued payloads to ``manager.handle_update`` and reports each result."""

    def __init__(
        self, manager: WatchlistManager, on_result: Callable[[UpdateResult], None]
    ) -> None:
        self._manager = manager
        self._on_result = on_result
        self._queue: queue.Queue[tuple[bool, bytes] | None] = queue.Queue(MAX_PENDING_UPDATES)
        self._thread = threading.Thread(target=self._run, name="watchlist", daemon=True)
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def offer(self, payload: bytes) -> None:
        """Queue one update (called on the MQTT thread; never blocks)."""
        self._put((False, payload))

    def offer_key(self, payload: bytes) -> None:
        """Queue HQ's key message for this device (called on the MQTT thread; never blocks)."""
        self._put((True, payload))

    def _put(self, item: tuple[bool, bytes]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            log.warning("watchlist update dropped: %d already waiting", MAX_PENDING_UPDATES)

    def stop(self, timeout: float = 10.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("watchlist updater busy at shutdown")
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            is_key, payload = item
            if is_key:
                result = self._manager.handle_key(payload, time.time())
            else:
                result = self._manager.handle_update(payload, time.time())
            if result is None:
                continue
            try:
                self._on_result(result)
            except Exception:  # reporting must not kill the updater
                log.exception("watchlist update result not reported")
