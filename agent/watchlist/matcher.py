"""Matches a voted read against the watchlist: exact, then under OCR confusion or one edit.

The index is memory-lean for a million entries: the list's content bytes and
sorted fixed-width numpy arrays (see :class:`agent.watchlist.content.EntryTable`),
plus each plate's folded key (first 13 characters) as an order-preserving
``uint64``, sorted, with the plate behind each. An exact lookup is one
``np.searchsorted``; a fuzzy lookup folds the read (confusion classes, dashes
dropped), generates the folded key and its one-edit neighbours (one character
dropped or inserted, over the 25-character folded alphabet) in one numpy
gather, and searches them all in one ``np.searchsorted`` call on the integers.

Ranking: exact beats fuzzy; among fuzzy candidates, a pure confusion-class match
(folded keys equal) beats a one-edit match, then higher priority, then plate.
A fuzzy candidate is kept only when it changes at most ``max_changes`` characters of
the read (:func:`changes`: ``O``/``0`` and ``I``/``1`` are one character): folding
alone let a sure read of an unlisted car reach an entry four look-alikes away
(a Moroccan ``6863-A-42`` matched the French ``GB-634-AZ``). An entry whose
``expires_at`` has passed never matches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from agent.reader.plate_text import is_valid
from agent.reads import Match, WatchlistEntry, edit_distance, plate_key
from agent.watchlist.confusion import FOLDED_ALPHABET, fold, fold_rows
from agent.watchlist.content import (
    PLATE_WIDTH,
    Change,
    EntryTable,
    ListEntry,
    encode_entries,
    parse_full,
    splice,
)

_W: Final = PLATE_WIDTH
_PAD: Final = _W  # index of the zero byte in the extended key
_SIGMA: Final = _W + 1  # first alphabet symbol in the extended key
_EXTRA: Final = np.concatenate([np.zeros(1, np.uint8), np.frombuffer(FOLDED_ALPHABET, np.uint8)])

MAX_CHANGES: Final = 1
"""Characters a fuzzy match may change in the read by default: one confused glyph, or one
dropped or extra character. Real reads of real plates through a million-entry list
(docs/watchlist.md, "How many characters a fuzzy match may change"): false alerts on
unlisted plates 35 -> 2 and alerts on the wrong listed plate 11 -> 4 of 1,367, the same 1,188
listed plates alerting on their own entry."""

EditPolicy = Literal["off", "malformed", "always"]
"""When a read may match an entry one dropped or extra character away.

``malformed`` (default): only reads that are not a well-formed Moroccan or French
plate, i.e. that visibly lost or gained a character. ``always`` also tries it for
well-formed reads: on a dense list of a million plates about one unlisted car in
nine then hits a listed neighbour (measured by the bench), so it is opt-in.
"""


@cache
def _neighbour_index(length: int) -> npt.NDArray[np.intp]:
    """Gather indices into ``key(16) + [0] + alphabet`` for the key and its one-edit variants.

    Row 0 is the key itself; later rows are deletions (the read has an extra
    character) and insertions (the read missed one). Substitutions outside the
    confusion classes are not generated: they are the bulk of the false alarms
    (see docs/watchlist.md, "Matching").
    """
    ident = list(range(length))
    rows = [ident]
    symbols = range(_SIGMA, _SIGMA + len(FOLDED_ALPHABET))
    if length > 1:
        rows += [ident[:p] + ident[p + 1 :] for p in range(length)]
    if length < _W:
        rows += [[*ident[:p], s, *ident[p:]] for p in range(length + 1) for s in symbols]
    return np.array([r + [_PAD] * (_W - len(r)) for r in rows], np.intp)


_CODE: Final = np.zeros(256, np.uint64)
_CODE[np.frombuffer(FOLDED_ALPHABET, np.uint8)] = np.arange(1, len(FOLDED_ALPHABET) + 1)
_RADIX: Final = len(FOLDED_ALPHABET) + 1
_CODE_CHARS: Final = 13  # 26**13 < 2**64
_POWERS: Final = np.array([_RADIX ** (_CODE_CHARS - 1 - j) for j in range(_CODE_CHARS)], np.uint64)


def _codes(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """Order-preserving integer of each folded key's first 13 characters (padding sorts first).

    Two keys of at most 12 characters have equal codes only if they are equal.
    """
    out = np.zeros(len(rows), np.uint64)
    for lo in range(0, len(rows), 1 << 16):
        out[lo : lo + (1 << 16)] = _CODE[rows[lo : lo + (1 << 16), :_CODE_CHARS]] @ _POWERS
    return out


def _plate_codes(plates: npt.NDArray[np.bytes_]) -> npt.NDArray[np.uint64]:
    rows = np.ascontiguousarray(plates, "S16").view(np.uint8).reshape(-1, _W)
    return _codes(fold_rows(rows))


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    """How a matcher matches (the ``[watchlist]`` settings, see :class:`Matcher`); a
    delta's matcher keeps its parent's."""

    fuzzy: bool = True
    fuzzy_min_confidence: float = 0.8
    edits: EditPolicy = "malformed"
    max_changes: int = MAX_CHANGES
    clock: Callable[[], float] = time.time

    def matcher(self, entries: Iterable[WatchlistEntry | ListEntry] = ()) -> Matcher:
        """A matcher of ``entries`` under this policy; raises WatchlistError."""
        return self.indexed(parse_full(encode_entries(entries)))

    def indexed(self, table: EntryTable) -> Matcher:
        """A matcher of an already checked table (what the cache and the verifier produce)."""
        matcher = Matcher.__new__(Matcher)
        matcher._table, matcher._policy = table, self
        matcher._build_fold_index()
        return matcher


class Matcher:
    """In-memory index of watchlist entries; immutable, so it can be swapped atomically."""

    def __init__(
        self,
        entries: Iterable[WatchlistEntry | ListEntry] = (),
        fuzzy: bool = True,
        fuzzy_min_confidence: float = 0.8,
        *,
        edits: EditPolicy = "malformed",
        max_changes: int = MAX_CHANGES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Index ``entries`` (a plate given twice keeps the last); raises WatchlistError."""
        self._table = parse_full(encode_entries(entries))
        self._policy = MatchPolicy(fuzzy, fuzzy_min_confidence, edits, max_changes, clock)
        self._build_fold_index()

    @classmethod
    def from_table(
        cls,
        table: EntryTable,
        fuzzy: bool = True,
        fuzzy_min_confidence: float = 0.8,
        *,
        edits: EditPolicy = "malformed",
        max_changes: int = MAX_CHANGES,
        clock: Callable[[], float] = time.time,
    ) -> Matcher:
        """Index an already checked table (what the cache and the verifier produce)."""
        return MatchPolicy(fuzzy, fuzzy_min_confidence, edits, max_changes, clock).indexed(table)

    def _build_fold_index(self) -> None:
        plates = self._table.plates
        codes = _codes(fold_rows(plates.view(np.uint8).reshape(-1, _W)))
        order = np.argsort(codes, kind="stable")
        self._codes: npt.NDArray[np.uint64] = codes[order]
        """Each folded key's first 13 characters as one base-26 integer, sorted: searching
        integers is several times faster than searching 16-byte strings."""
        self._key_plates: npt.NDArray[np.bytes_] = plates[order]
        """The plate behind each code (plates, not row numbers, so a delta shifts nothing)."""

    def updated(self, table: EntryTable, change: Change) -> Matcher:
        """A new matcher over ``table`` (the result of a delta), following ``change``.

        Removed and added plates are spliced into the folded index: O(d log n)
        searches and one vectorised rebuild of each array, no re-sort; ``self`` is
        unchanged.
        """
        new = Matcher.__new__(Matcher)
        new._table, new._policy = table, self._policy
        codes, plates = self._codes, self._key_plates
        gone = self._positions(change.removed)
        added_codes = _plate_codes(change.added)
        by_code = np.argsort(added_codes, kind="stable")  # same position: by code
        added_codes = added_codes[by_code]
        new._codes, new._key_plates = splice(
            [codes, plates],
            gone,
            np.searchsorted(codes, added_codes, side="right"),
            [added_codes, change.added[by_code]],
        )
        return new

    def _positions(self, removed: npt.NDArray[np.bytes_]) -> npt.NDArray[np.int64]:
        """Where each of these plates sits in the folded index (several plates may fold to
        one code: those are found by a short scan); RuntimeError if one is missing."""
        codes, plates = self._codes, self._key_plates
        found = np.searchsorted(codes, _plate_codes(removed)).astype(np.int64)
        inside = found < len(codes)
        hit = np.zeros(len(removed), np.bool_)
        hit[inside] = plates[found[inside]] == removed[inside]
        for k in np.flatnonzero(~hit).tolist():
            i, plate = int(found[k]), removed[k]
            code = codes[i] if i < len(codes) else None
            while i < len(codes) and codes[i] == code and plates[i] != plate:
                i += 1
            if i == len(codes) or plates[i] != plate:
                raise RuntimeError(f"index out of step: {plate!r} is not in the folded index")
            found[k] = i
        return found

    @property
    def table(self) -> EntryTable:
        return self._table

    def __len__(self) -> int:
        return len(self._table)

    def match(
        self,
        plate: str,
        confidence: float,
        now: float | None = None,
        *,
        alternatives: Sequence[str] = (),
    ) -> Match | None:
        """The best live entry for this read, or None; fuzzy only for confident reads.

        ``now`` (Unix seconds) decides entry expiry; it defaults to the matcher's clock.
        ``alternatives``: other texts the reader nearly read (a doubtful ``0``/``O``,
        ``8``/``B``: agent.reader.alternatives), most likely first. When ``plate`` is
        not listed, the first listed alternative is a ``fuzzy`` match, whatever the
        confidence (the doubt was the reader's, character by character).
        """
        if now is None:
            now = self._policy.clock()
        try:
            key = plate.encode("ascii")
        except UnicodeEncodeError:
            return None
        table = self._table
        row = table.find(key) if len(key) <= _W else -1
        if row >= 0 and self._live(row, now):
            return Match(table.entry(row).entry, "exact")
        policy = self._policy
        if policy.fuzzy:
            for alternative in alternatives:
                alt_row = self._exact_row(alternative)
                if alt_row >= 0 and self._live(alt_row, now):
                    return Match(table.entry(alt_row).entry, "fuzzy")
        if not policy.fuzzy or confidence < policy.fuzzy_min_confidence:
            return None
        folded = fold(plate).encode("ascii")
        if not folded or len(folded) > _W or not len(self._codes):
            return None
        read = plate_key(plate)
        best = self._search(folded, 1, now, read)
        if best is None and self._edits_allowed(plate):
            best = self._search(folded, None, now, read)
        return None if best is None else Match(table.entry(best).entry, "fuzzy")

    def _exact_row(self, plate: str) -> int:
        try:
            key = plate.encode("ascii")
        except UnicodeEncodeError:
            return -1
        return self._table.find(key) if 0 < len(key) <= _W else -1

    def _edits_allowed(self, plate: str) -> bool:
        edits = self._policy.edits
        if edits == "off":
            return False
        return edits == "always" or not (is_valid(plate, "MA") or is_valid(plate, "FR"))

    def _live(self, row: int, now: float) -> bool:
        expires = int(self._table.expires[row])
        return expires == 0 or now < expires

    def _search(self, folded: bytes, limit: int | None, now: float, read: str) -> int | None:
        """Best live row among the folded key (row 0) and, unless ``limit``, its edits, of
        the entries at most ``max_changes`` away from ``read`` (its :func:`plate_key`)."""
        ext = np.concatenate([np.frombuffer(folded.ljust(_W, b"\0"), np.uint8), _EXTRA])
        index = _neighbour_index(len(folded))
        rows = ext[index[:limit]]
        wanted = _codes(rows)
        codes = self._codes
        lo = np.searchsorted(codes, wanted)
        found = np.flatnonzero(codes[np.minimum(lo, len(codes) - 1)] == wanted)
        best: tuple[int, int, bytes] | None = None
        best_row = None
        table = self._table
        for ci in found.tolist():
            tier = 0 if ci == 0 else 1
            key = rows[ci].tobytes().rstrip(b"\0")
            i = int(lo[ci])
            while i < len(codes) and codes[i] == wanted[ci]:
                plate = bytes(self._key_plates[i])
                i += 1
                text = plate.decode("ascii")
                if len(key) >= _CODE_CHARS and fold(text).encode() != key:
                    continue  # same first 13 characters, different key
                if changes(read, text) > self._policy.max_changes:
                    continue
                row = table.find(plate)
                if not self._live(row, now):
                    continue
                rank = (tier, -int(table.priority[row]), bytes(table.plates[row]))
                if best is None or rank < best:
                    best, best_row = rank, row
        return best_row


def changes(read_key: str, plate: str) -> int:
    """How many characters a match of ``plate`` changes in a read whose
    :func:`~agent.reads.plate_key` is ``read_key``: confused glyphs, dropped and extra
    characters, each one; separators, ``O``/``0`` and ``I``/``1`` none."""
    return edit_distance(read_key, plate_key(plate))
