"""Frame → plate reads → tracks → watchlist hits: the pure core of the agent.

No threads, sockets or files here: the daemon feeds frames in and takes hits
out, and the benchmark drives exactly the same code.

Fast path (``fast_min_confidence``): a track's first read that is at least that
sure and names a listed plate *exactly* raises the hit at once, one frame or
more before the tracker's vote would confirm it (the alert-latency bench shows
the waiting for a second read was most of the delay). Fuzzy matches and less
sure reads still wait for the vote. The track is remembered, so its later
confirmation raises no second hit; and a listed plate hit again within
``realert_s`` (a track the tracker split after frames were dropped) is not
raised twice.

Deep reads (``deep``, agent.deep_reads): a frame in which the video read saw a plate is
offered to the photo reader in its worker process; the reads it gives back, a few
frames later, go to the tracker as decisive reads of their own frame, and a hit they
raise shows that frame's crop.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import cv2

from agent.deep_reads import DeepReads
from agent.errors import FrameError
from agent.frames import Frame, Image
from agent.reader.base import PlateReader
from agent.reads import Box, Hit, Match, PlateRead, TrackedRead
from agent.tracking import Tracker
from agent.watchlist.matcher import Matcher

log = logging.getLogger(__name__)

MAX_REMEMBERED_TRACKS = 4096
CROP_JPEG_QUALITY = 85


def crop_jpeg(image: Image, box: Box, margin: float = 0.15) -> bytes:
    """JPEG of the plate with a margin, for the HQ operator to see what was read."""
    x, y, w, h = box
    dx, dy = int(w * margin), int(h * margin)
    height, width = image.shape[:2]
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    if x1 <= x0 or y1 <= y0:
        return b""
    ok, buffer = cv2.imencode(
        ".jpg", image[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY]
    )
    return buffer.tobytes() if ok else b""


@dataclass(slots=True)
class PipelineStats:
    frames: int = 0
    skipped: int = 0
    bad_frames: int = 0
    reads: int = 0
    tracks: int = 0
    hits: int = 0
    fast_hits: int = 0
    repeats: int = 0
    """Hits not raised again: the same listed plate within ``realert_s`` (a track broken by
    dropped frames, or the plate's first sure read and its vote)."""
    read_ms_ema: float = 0.0
    deep_hits: int = 0
    """Hits raised by a deep read."""


class Pipeline:
    """Reads plates in frames and turns each wanted vehicle passing into one Hit."""

    def __init__(
        self,
        reader: PlateReader,
        tracker: Tracker,
        matcher: Matcher,
        device_id: str,
        every_nth_frame: int = 1,
        *,
        fast_min_confidence: float | None = None,
        realert_s: float = 10.0,
        deep: DeepReads | None = None,
    ) -> None:
        self.reader = reader
        self.tracker = tracker
        self.matcher = matcher
        self.device_id = device_id
        self._every_nth = every_nth_frame
        self._fast_min_confidence = fast_min_confidence
        self._realert_s = realert_s
        self.deep = deep
        self._last_hit: dict[str, float] = {}
        self._hit_tracks: OrderedDict[int, None] = OrderedDict()
        self.stats = PipelineStats()

    def replace_matcher(self, matcher: Matcher) -> None:
        """Swap in a new watchlist atomically (a reference assignment)."""
        self.matcher = matcher

    def process(self, frame: Frame) -> list[Hit]:
        """Hits newly raised by this frame; a frame the reader refuses is counted and skipped."""
        self.stats.frames += 1
        hits = self._deep_hits() if self.deep is not None else []
        if frame.index % self._every_nth:
            self.stats.skipped += 1
            return hits
        started = time.perf_counter()
        try:
            reads = self.reader.read(frame.image)
        except FrameError as exc:
            self.stats.bad_frames += 1
            log.warning("reader: skipping bad frame: %s", exc, extra={"frame": frame.index})
            return hits
        self.stats.reads += len(reads)
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.stats.read_ms_ema += 0.05 * (elapsed_ms - self.stats.read_ms_ema)
        for tracked in self.tracker.observe(reads, frame.timestamp, frame.index):
            hit = self._check(tracked, frame)
            if hit is not None:
                hits.append(hit)
        if self._fast_min_confidence is not None:
            for tracked in self.tracker.provisional:
                hit = self._check_fast(tracked, frame, self._fast_min_confidence)
                if hit is not None:
                    hits.append(hit)
        if self.deep is not None and self._wants_deep_read(reads):
            self.deep.offer(frame)  # refused while the worker reads (DeepReads.stats counts)
        return hits

    def _wants_deep_read(self, reads: list[PlateRead]) -> bool:
        """A frame is worth a deep read when it holds a plate no deep read has settled yet
        (agent.tracking's ``settled``), or a plate the camera could not read: the worker
        goes to the cars it has not read rather than the one that stays in view."""
        return any(not self.tracker.settled(r.text) for r in reads) or getattr(
            self.reader, "plate_unread", False
        )

    def poll(self, wait_s: float = 0.0) -> list[Hit]:
        """Hits raised by deep reads finished while no frame came (a stalled camera, the
        end of a file); ``wait_s``: how long to wait for the frame being read deep."""
        return self._deep_hits(wait_s) if self.deep is not None else []

    def _deep_hits(self, wait_s: float = 0.0) -> list[Hit]:
        """Hits raised by the deep reads finished since the last frame."""
        assert self.deep is not None
        hits = []
        for frame, reads in self.deep.finished(wait_s):
            for tracked in self.tracker.observe(reads, frame.timestamp, frame.index, decisive=True):
                hit = self._check(tracked, frame)
                if hit is not None:
                    self.stats.deep_hits += 1
                    hits.append(hit)
        return hits

    def _check_fast(self, tracked: TrackedRead, frame: Frame, threshold: float) -> Hit | None:
        """One sure read that is exactly a listed plate: alert now, not at the next read."""
        if tracked.confidence < threshold or tracked.track_id in self._hit_tracks:
            return None
        match = self.matcher.match(tracked.text, tracked.confidence)
        if match is None or match.kind != "exact":
            return None
        hit = self._raise(tracked, match, frame)
        if hit is not None:
            self.stats.fast_hits += 1
        return hit

    def _check(self, tracked: TrackedRead, frame: Frame) -> Hit | None:
        if tracked.track_id in self._hit_tracks:
            return None
        self.stats.tracks += 1
        match = self.matcher.match(
            tracked.text, tracked.confidence, alternatives=tracked.alternatives
        )
        if match is None:
            return None
        return self._raise(tracked, match, frame)

    def _raise(self, tracked: TrackedRead, match: Match, frame: Frame) -> Hit | None:
        """The hit, unless the same listed plate was hit within ``realert_s`` (one passing)."""
        self._hit_tracks[tracked.track_id] = None
        if len(self._hit_tracks) > MAX_REMEMBERED_TRACKS:
            self._hit_tracks.popitem(last=False)
        plate = match.entry.plate
        last = self._last_hit.get(plate)
        self._last_hit[plate] = frame.timestamp if last is None else max(last, frame.timestamp)
        if len(self._last_hit) > MAX_REMEMBERED_TRACKS:
            self._last_hit.pop(next(iter(self._last_hit)))
        if last is not None and abs(frame.timestamp - last) < self._realert_s:
            self.stats.repeats += 1
            return None
        self.stats.hits += 1
        return Hit(self.device_id, tracked, match, crop_jpeg=crop_jpeg(frame.image, tracked.box))
