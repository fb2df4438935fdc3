"""Multi-frame tracking and voting: one vehicle passing makes one read.

Frame reads whose texts agree up to OCR confusion and one edit, seen within
``gap_s`` of each other, belong to one track. A track is *confirmed* as soon as
it has ``min_reads`` reads (so the officer is alerted while the car is still in
view, not after it has gone), and its voted text is the one with the largest
summed confidence; should later frames change the vote, the track is reported
again with the same ``track_id`` so a late correct read still counts. Closed
tracks are kept ``retention_s`` for "what did we just pass?" and then
forgotten: unmatched reads never leave the device.

Tracks not yet confirmed but read in the latest frame are in ``provisional``,
so the pipeline may alert on one sure read that exactly names a listed plate
without waiting for the second read (``agent.pipeline``'s fast path).

*Decisive* reads are the photo reader's reads of a video frame (agent.deep_reads): it
reads far more plates right than the video read (both recognisers, every photo pass).
One confirms its track at once, and a track's decisive reads outvote its video reads
however many there are (a blurred ``687-A-40`` read in ten frames does not outvote one
photo read of ``94687-A-40``); the video texts stay among the track's alternatives, so
the matcher still tries them. A decisive read joins the track whose video read of the
same frame it overlaps (:data:`SAME_PLATE_IOU`), however different the texts: one
vehicle, one track.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from agent.reads import Box, PlateFormat, PlateRead, TrackedRead, box_iou
from agent.watchlist.confusion import fold

MAX_ALTERNATIVES = 6
"""Other texts a voted read carries to the matcher (other votes first)."""
SAME_PLATE_IOU = 0.3
"""A decisive read and a video read of the same frame overlapping this much are one plate."""
FRAMES_KEPT = 64
"""Boxes of a track's latest reads kept by frame, for decisive reads that come late."""
SETTLED_READS = 2
SETTLED_CONFIDENCE = 0.9
"""A track is settled, no longer worth a deep read, once it has :data:`SETTLED_READS`
decisive reads, or one at least this sure."""


def within_one_edit(a: str, b: str) -> bool:
    """True when a and b differ by at most one substitution, insertion or deletion."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


@dataclass(slots=True)
class _Track:
    track_id: int
    key: str
    first_seen: float
    last_seen: float
    votes: dict[str, float] = field(default_factory=dict)
    decided: dict[str, float] = field(default_factory=dict)
    """Summed confidence of each text's decisive reads; they lead the vote when any."""
    formats: dict[str, PlateFormat] = field(default_factory=dict)
    alternatives: dict[str, tuple[str, ...]] = field(default_factory=dict)
    boxes: dict[int, Box] = field(default_factory=dict)
    """The box of each of the latest :data:`FRAMES_KEPT` reads, by frame index."""
    best_box: Box = (0, 0, 0, 0)
    best_conf: float = 0.0
    frame_index: int = 0
    n_reads: int = 0
    n_decisive: int = 0
    reported_text: str = ""

    def add(self, read: PlateRead, timestamp: float, frame_index: int, decisive: bool) -> None:
        if decisive:
            self.decided[read.text] = self.decided.get(read.text, 0.0) + read.confidence
            self.n_decisive += 1
        else:
            self.votes[read.text] = self.votes.get(read.text, 0.0) + read.confidence
        self.formats[read.text] = read.format
        if read.alternatives:
            self.alternatives[read.text] = read.alternatives
        self.last_seen = max(self.last_seen, timestamp)  # a decisive read may come late
        self.n_reads += 1
        self.boxes[frame_index] = read.box
        if len(self.boxes) > FRAMES_KEPT:
            del self.boxes[next(iter(self.boxes))]
        # A decisive read's box is the one its frame is cropped at for the hit's picture.
        if decisive or (not self.decided and read.confidence >= self.best_conf):
            self.best_conf, self.best_box, self.frame_index = read.confidence, read.box, frame_index

    def _leading_votes(self) -> dict[str, float]:
        return self.decided or self.votes

    def leading_text(self) -> str:
        votes = self._leading_votes()
        return max(votes, key=votes.__getitem__)

    def voted(self) -> TrackedRead:
        text = self.leading_text()
        n_leading = self.n_decisive or self.n_reads
        confidence = self._leading_votes()[text] / n_leading
        return TrackedRead(
            text=text,
            format=self.formats[text],
            confidence=confidence,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            n_reads=self.n_reads,
            box=self.best_box,
            frame_index=self.frame_index,
            track_id=self.track_id,
            alternatives=self._alternatives(text),
        )

    def _alternatives(self, leader: str) -> tuple[str, ...]:
        others = [
            text
            for votes in (self.decided, self.votes)
            for text in sorted(votes, key=votes.__getitem__, reverse=True)
        ]
        out = dict.fromkeys([*others, *self.alternatives.get(leader, ())])
        out.pop(leader, None)
        return tuple(out)[:MAX_ALTERNATIVES]


class Tracker:
    """Groups frame reads into vehicle tracks; pure logic, time passed in."""

    def __init__(self, gap_s: float = 1.0, min_reads: int = 2, retention_s: float = 300.0) -> None:
        self._gap_s = gap_s
        self._min_reads = min_reads
        self._retention_s = retention_s
        self._open: list[_Track] = []
        self._next_id = 1
        self._recent: deque[tuple[float, TrackedRead]] = deque()
        self.provisional: list[TrackedRead] = []
        """Tracks read in the latest frame that have fewer than ``min_reads`` reads."""

    def observe(
        self,
        reads: list[PlateRead],
        timestamp: float,
        frame_index: int,
        *,
        decisive: bool = False,
    ) -> list[TrackedRead]:
        """Add one frame's reads; returns tracks confirmed, or whose vote changed, in this frame.

        ``decisive``: the reads are a deep read of that frame (see the module doc); the
        frame may be older than the last one observed."""
        self._close_stale(timestamp)
        changed = []
        self.provisional = []
        for read in reads:
            track = (decisive and self._at(frame_index, read.box)) or self._find(read.text)
            if track is None:
                track = _Track(self._next_id, fold(read.text), timestamp, timestamp)
                self._next_id += 1
                self._open.append(track)
            track.add(read, timestamp, frame_index, decisive)
            confirmed = track.n_decisive > 0 or track.n_reads >= self._min_reads
            if confirmed and track.leading_text() != track.reported_text:
                track.reported_text = track.leading_text()
                changed.append(track.voted())
            elif not confirmed:
                self.provisional.append(track.voted())
        return changed

    def settled(self, text: str) -> bool:
        """Whether the open track ``text`` joins has had deep reads enough (see
        :data:`SETTLED_CONFIDENCE`): a second opinion only where the first was unsure."""
        track = self._find(text)
        if track is None or not track.decided:
            return False
        sure = max(track.decided.values()) / track.n_decisive >= SETTLED_CONFIDENCE
        return track.n_decisive >= SETTLED_READS or sure

    def _at(self, frame_index: int, box: Box) -> _Track | None:
        """The open track whose read of frame ``frame_index`` overlaps ``box`` most."""
        overlaps = [
            (box_iou(track.boxes[frame_index], box), track)
            for track in self._open
            if frame_index in track.boxes
        ]
        best = max(overlaps, key=lambda o: o[0], default=None)
        return best[1] if best is not None and best[0] >= SAME_PLATE_IOU else None

    def _find(self, text: str) -> _Track | None:
        """The open track ``text`` joins: within one edit of its first text or, once a
        deep read leads it, of that text too."""
        key = fold(text)
        for track in self._open:
            if within_one_edit(track.key, key) or (
                track.decided and within_one_edit(fold(track.leading_text()), key)
            ):
                return track
        return None

    def _close_stale(self, now: float) -> None:
        still_open = []
        for track in self._open:
            if now - track.last_seen > self._gap_s:
                self._recent.append((track.last_seen, track.voted()))
            else:
                still_open.append(track)
        self._open = still_open
        while self._recent and now - self._recent[0][0] > self._retention_s:
            self._recent.popleft()

    def flush(self, now: float) -> None:
        """Close every open track (end of footage)."""
        self._close_stale(now + self._gap_s + 1e-6)

    def recent(self, now: float) -> list[TrackedRead]:
        """Vehicles passed within the retention window, newest first."""
        self._close_stale(now)
        return [read for _, read in reversed(self._recent)] + [t.voted() for t in self._open]

    @property
    def open_tracks(self) -> int:
        return len(self._open)
