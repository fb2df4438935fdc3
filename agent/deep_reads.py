"""Deep reads: a video frame read again by the photo reader, in a worker process.

Why: the camera reads every frame with the quick video settings (one recogniser, no
photo passes) to keep up with 25 fps and more. The photo reader (``raqib read`` of an
image: both recognisers, the wider view, snapped, levelled, tilted and near passes)
reads far more plates right but takes 100-300 ms a frame. Read once in a while beside
the video loop, it gives the tracker the photo reader's text for the plates in view.
Measured on the held-out photos read as video frames (docs/benchmarks.md, "deep reads"):
the Moroccan scenes 239 -> 284 of 299 plates read exactly (the photo reader alone: 285),
French cars 40 -> 45 of 47, the mixed photos 72 -> 83 of 116.

Which frames: one with a read whose track no deep read has settled yet (one at least
0.9 sure, or two: ``Tracker.settled``), or with a plate box the video read left unread
(``ModelPlateReader.plate_unread``), so the worker goes to the cars it has not read
rather than the one that stays in view (the sample clip: 41 of 332 frames read deep,
every vehicle at least once; 95 when every frame showing a plate was offered).

How it keeps the video loop lean:

- one frame at a time: :meth:`DeepReads.offer` hands the worker a frame only when it is
  idle and otherwise refuses at once (no queue: the next frame with a plate after the
  worker is free is read, so deep reads are never behind by more than one read);
- a separate process (``spawn``), so its Python does not share the video loop's
  interpreter lock; the frame goes over a pipe (2.7 MB for 1280 x 720, about a
  millisecond);
- :meth:`DeepReads.finished` does not wait unless asked to: it returns the reads that
  are ready, each with the frame it was read in, for the pipeline to hand to the
  tracker as decisive reads (agent.tracking) and to crop the hit's picture from.

A worker that dies (killed, out of memory) is logged and started again after
``restart_s``; a frame it cannot read is logged and dropped; a worker that cannot load
the models is logged and deep reads stay off (the video loop goes on either way).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from agent.config import ReaderConfig
from agent.errors import RaqibError
from agent.frames import Frame
from agent.reads import PlateRead
from agent.tracking import Tracker

log = logging.getLogger(__name__)

RESTART_S = 30.0
"""Wait before starting a worker again after it died."""


@dataclass(slots=True)
class DeepReadStats:
    taken: int = 0
    """Frames handed to the worker (it was idle)."""
    read: int = 0
    """Frames the worker read and gave back."""
    busy: int = 0
    """Offers refused because the worker was still reading (or starting)."""
    errors: int = 0
    """Frames the worker could not read."""
    restarts: int = 0
    read_ms_ema: float = 0.0
    """The worker's time per frame (exponential moving average)."""
    lag_ms_ema: float = 0.0
    """From a frame's offer to its reads given back (the worker's time, the pipe, and the
    video frames read before the pipeline asks again)."""


class DeepReads:
    """The photo reader in a worker process, reading one offered video frame at a time."""

    def __init__(self, config: ReaderConfig, *, restart_s: float = RESTART_S) -> None:
        self._config = config.model_dump(mode="json")
        self._restart_s = restart_s
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._in_flight: Frame | None = None
        self._offered_at = 0.0
        self._died_at: float | None = None
        self._disabled = False
        self.stats = DeepReadStats()
        self._start()

    @property
    def running(self) -> bool:
        """True while a worker is started (loading or ready) and deep reads are not off."""
        return self._process is not None and not self._disabled

    @property
    def pid(self) -> int | None:
        """The worker's process id, while one is started."""
        return self._process.pid if self._process is not None else None

    @property
    def idle(self) -> bool:
        """True when the worker is loaded and reads no frame: an offer now is taken."""
        self._poll_ready()
        return self._ready and self._in_flight is None

    def offer(self, frame: Frame) -> bool:
        """Hand ``frame`` to the worker if it is idle; never blocks. True when taken."""
        if self._disabled:
            return False
        if self._process is None:
            if self._died_at is None or time.monotonic() - self._died_at < self._restart_s:
                return False
            self.stats.restarts += 1
            self._start()
        if not self.idle:
            self.stats.busy += 1
            return False
        assert self._conn is not None
        try:
            self._conn.send((frame.index, frame.image))
        except (OSError, ValueError) as exc:
            self._lost(f"could not be sent frame {frame.index} ({exc})")
            return False
        self._in_flight, self._offered_at = frame, time.monotonic()
        self.stats.taken += 1
        return True

    def finished(self, wait_s: float = 0.0) -> list[tuple[Frame, list[PlateRead]]]:
        """The reads the worker has finished since the last call, each with its frame;
        ``wait_s``: how long to wait for a frame it is reading (0: not at all)."""
        if self._conn is None or self._in_flight is None:
            return []
        try:
            if not self._conn.poll(wait_s):
                return []
            reply = self._conn.recv()
        except (EOFError, OSError) as exc:
            self._lost(f"stopped reading frame {self._in_flight.index} ({exc!r})")
            return []
        frame, self._in_flight = self._in_flight, None
        kind, index, payload, ms = reply
        if index != frame.index:  # cannot happen with one frame in flight; never pair wrongly
            log.error("deep reads: reply for frame %s, expected %s", index, frame.index)
            return []
        if kind == "error":
            self.stats.errors += 1
            log.warning("deep reads: frame not read: %s", payload, extra={"frame": index})
            return []
        self.stats.read += 1
        lag = (time.monotonic() - self._offered_at) * 1000
        stats, first = self.stats, self.stats.read == 1
        stats.read_ms_ema = ms if first else stats.read_ms_ema + 0.1 * (ms - stats.read_ms_ema)
        stats.lag_ms_ema = lag if first else stats.lag_ms_ema + 0.1 * (lag - stats.lag_ms_ema)
        return [(frame, list(payload))]

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker (it finishes the frame it reads); safe to call more than once."""
        self._disabled = True
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
        if process is not None:
            process.join(timeout_s)
            if process.is_alive():
                process.kill()
                process.join(timeout_s)
        if conn is not None:
            conn.close()

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(child, self._config), name="raqib-deep-reads", daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn, self._ready, self._in_flight = process, parent, False, None
        log.info("deep reads: worker started", extra={"pid": process.pid})

    def _poll_ready(self) -> None:
        """Take the worker's first message (its models loaded, or why not) once it is sent."""
        if self._ready or self._conn is None:
            return
        try:
            if not self._conn.poll():
                return
            kind, detail = self._conn.recv()
        except (EOFError, OSError) as exc:
            self._lost(f"stopped loading its models ({exc!r})")
            return
        if kind == "ready":
            self._ready = True
            log.info("deep reads: worker ready", extra={"models": detail})
            return
        log.error("deep reads off: the worker cannot load the reader: %s", detail)
        self.close()

    def _lost(self, why: str) -> None:
        """The worker is gone: log it, reap it, and start another after ``restart_s``."""
        process = self._process
        code = None
        if process is not None:
            process.join(1.0)
            code = process.exitcode
        log.error(
            "deep reads: worker lost, it %s; exit code %s; another starts in %.0f s",
            why,
            code,
            self._restart_s,
        )
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None
        self._ready, self._in_flight = False, None
        self._died_at = time.monotonic()


def _serve(conn: Connection, config: dict[str, Any]) -> None:
    """The worker: load the photo reader, then read each frame sent until ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon stops it through the pipe
    from agent.reader.pipeline import ModelPlateReader

    try:
        reader = ModelPlateReader.from_config(ReaderConfig(**config), stills=True)
    except (RaqibError, ValueError, OSError) as exc:
        conn.send(("failed", str(exc)))
        return
    conn.send(("ready", getattr(reader.recogniser, "version", "")))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the daemon is gone
        if message is None:
            return
        index, image = message
        started = time.perf_counter()
        try:
            reads = reader.read(image)
        except RaqibError as exc:
            conn.send(("error", index, str(exc), 0.0))
            continue
        except Exception as exc:  # a reader bug must cost one frame, not the worker
            conn.send(("error", index, f"{type(exc).__name__}: {exc}", 0.0))
            continue
        conn.send(("ok", index, reads, (time.perf_counter() - started) * 1000))


def one_frame_tracks(video: list[PlateRead], deep: list[PlateRead]) -> list[PlateRead]:
    """What the tracker keeps of one frame read both ways: each track's voted read, a deep
    read deciding the track its text joins (``raqib eval --deep-reads`` scores this)."""
    tracker = Tracker(min_reads=1)
    tracker.observe(video, 0.0, 0)
    tracker.observe(deep, 0.0, 0, decisive=True)
    return [
        PlateRead(t.text, t.format, t.confidence, t.box, t.alternatives)
        for t in tracker.recent(0.0)
    ]
