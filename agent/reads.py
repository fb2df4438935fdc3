"""Plate reads, watchlist matches and hits: the values the pipeline hands along."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PlateFormat = Literal["MA", "FR", "EU", "UNKNOWN"]
MatchKind = Literal["exact", "fuzzy"]
Box = tuple[int, int, int, int]
"""x, y, width, height in pixels of the frame, top-left origin."""


_SAME_CHARACTER = str.maketrans({"O": "0", "I": "1", "-": None})


def plate_key(text: str) -> str:
    """A canonical text as plates are compared for exact-plate accuracy and counted by the
    matcher's changes: separators dropped, ``O``/``0`` and ``I``/``1`` each one character
    (plates print them alike; two texts with one key are one car)."""
    return text.translate(_SAME_CHARACTER)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    inter = _intersection(a, b)
    if inter == 0:
        return 0.0
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def box_inside_share(box: Box, other: Box) -> float:
    """The share of ``box``'s area that lies inside ``other`` (0 for an empty box)."""
    area = box[2] * box[3]
    return _intersection(box, other) / float(area) if area > 0 else 0.0


def _intersection(a: Box, b: Box) -> int:
    """The area two boxes share (0 when they do not overlap)."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return iw * ih if iw > 0 and ih > 0 else 0


@dataclass(frozen=True, slots=True)
class PlateRead:
    """One plate read in one frame, text already in canonical form (see agent.reader.plate_text)."""

    text: str
    format: PlateFormat
    confidence: float
    box: Box
    alternatives: tuple[str, ...] = ()
    """The few best other canonical texts the recogniser nearly read (a doubtful ``0``/``O``
    or ``8``/``B``), most probable first; the matcher tries them (agent.reader.alternatives)."""


@dataclass(frozen=True, slots=True)
class WatchlistEntry:
    """A wanted vehicle: canonical plate and why it is wanted."""

    plate: str
    reason: str
    case_ref: str = ""
    priority: int = 1


@dataclass(frozen=True, slots=True)
class Match:
    """A read matched a watchlist entry, exactly or under OCR confusion."""

    entry: WatchlistEntry
    kind: MatchKind


@dataclass(frozen=True, slots=True)
class TrackedRead:
    """The voted read of one vehicle passing: many frame reads, one best text."""

    text: str
    format: PlateFormat
    confidence: float
    first_seen: float
    last_seen: float
    n_reads: int
    box: Box
    frame_index: int
    track_id: int = 0
    alternatives: tuple[str, ...] = ()
    """Other texts this vehicle may carry: the track's other voted texts, then the
    recogniser's alternatives of the voted one (most likely first)."""


@dataclass(frozen=True, slots=True)
class GnssFix:
    lat: float
    lon: float
    accuracy_m: float
    timestamp: float


@dataclass(frozen=True, slots=True)
class Hit:
    """A tracked read that matched the watchlist: what the officer and HQ are told."""

    device_id: str
    read: TrackedRead
    match: Match
    gnss: GnssFix | None = None
    crop_jpeg: bytes = field(default=b"", repr=False)
