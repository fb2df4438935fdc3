"""Applies watchlist updates arriving over MQTT on their own thread.

Verifying and indexing a million-entry list takes about a second: that must
not stall plate reading nor paho's network thread, so payloads are queued
(bounded; an update that finds the queue full is dropped and logged, the
retained message brings it back at the next connect) and handled here.

One worker serves one manager on a camera. The fleet simulator, which runs
hundreds of devices in one process, lets one worker serve many managers
(:meth:`UpdateWorker.feed`) instead of running a thread per device; each
update is still verified and applied by its own device's manager.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeAlias

from agent.watchlist.manager import UpdateResult, WatchlistManager

log = logging.getLogger(__name__)

MAX_PENDING_UPDATES = 4
"""Per manager served: a worker for ``n`` managers queues ``n`` times as many."""

ResultSink: TypeAlias = Callable[[UpdateResult], None]
_Item: TypeAlias = tuple[WatchlistManager, ResultSink, bool, bytes]


class UpdateWorker:
    """Feeds queued payloads to ``manager.handle_update`` and reports each result."""

    def __init__(
        self, manager: WatchlistManager, on_result: ResultSink, *, serves: int = 1
    ) -> None:
        """``serves``: how many managers this worker will serve (itself plus :meth:`feed`)."""
        self._manager = manager
        self._on_result = on_result
        self._capacity = MAX_PENDING_UPDATES * max(1, serves)
        self._queue: queue.Queue[_Item | None] = queue.Queue(self._capacity)
        self._thread = threading.Thread(target=self._run, name="watchlist", daemon=True)
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def offer(self, payload: bytes) -> None:
        """Queue one update (called on the MQTT thread; never blocks)."""
        self._put((self._manager, self._on_result, False, payload))

    def offer_key(self, payload: bytes) -> None:
        """Queue HQ's key message for this device (called on the MQTT thread; never blocks)."""
        self._put((self._manager, self._on_result, True, payload))

    def feed(self, manager: WatchlistManager, on_result: ResultSink) -> Callable[[bytes], None]:
        """An ``offer`` for another device's manager, served by this worker's thread."""

        def offer(payload: bytes) -> None:
            self._put((manager, on_result, False, payload))

        return offer

    def _put(self, item: _Item) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            log.warning("watchlist update dropped: %d already waiting", self._capacity)

    def stop(self, timeout: float = 10.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("watchlist updater busy at shutdown")
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            manager, on_result, is_key, payload = item
            if is_key:
                result = manager.handle_key(payload, time.time())
            else:
                result = manager.handle_update(payload, time.time())
            if result is None:
                continue
            try:
                on_result(result)
            except Exception:  # reporting must not kill the updater
                log.exception("watchlist update result not reported")
