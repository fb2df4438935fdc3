"""Matches a voted read against the watchlist, exactly or under OCR confusion.

Lookups are two dict probes (exact text, then folded key), so they stay in the
microseconds whatever the list size.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.reads import Match, WatchlistEntry
from agent.watchlist.confusion import fold


class Matcher:
    """In-memory index of watchlist entries."""

    def __init__(
        self,
        entries: Iterable[WatchlistEntry],
        fuzzy: bool = True,
        fuzzy_min_confidence: float = 0.8,
    ) -> None:
        self._exact: dict[str, WatchlistEntry] = {}
        self._folded: dict[str, list[WatchlistEntry]] = {}
        for entry in entries:
            self._exact[entry.plate] = entry
            self._folded.setdefault(fold(entry.plate), []).append(entry)
        self._fuzzy = fuzzy
        self._fuzzy_min_confidence = fuzzy_min_confidence

    def __len__(self) -> int:
        return len(self._exact)

    def match(self, plate: str, confidence: float) -> Match | None:
        """The best entry for this read, or None; fuzzy only for confident reads."""
        entry = self._exact.get(plate)
        if entry is not None:
            return Match(entry, "exact")
        if not self._fuzzy or confidence < self._fuzzy_min_confidence:
            return None
        candidates = self._folded.get(fold(plate))
        if not candidates:
            return None
        return Match(max(candidates, key=lambda e: e.priority), "fuzzy")
