"""The list content: one canonical line per entry, and a memory-lean table over it.

Full content is UTF-8 lines sorted by plate (byte order), each::

    plate \\t reason \\t case_ref \\t priority \\t expires_at \\n

``plate`` is canonical plate text (``A-Z 0-9 -``, 1 to 16 characters), ``reason``
is not empty, ``priority`` is 0-9999 and ``expires_at`` Unix seconds (0: never),
both plain decimal without leading zeros. A delta is lines sorted by plate,
``+\\t<entry line>`` (add or replace) or ``-\\t<plate>`` (remove).

:func:`parse_full` checks a million lines with a few vectorised numpy passes and
keeps the content bytes plus fixed-width arrays (plates ``S16``, line offsets,
priority, expiry), about 45 bytes an entry beyond the content itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from agent.reads import WatchlistEntry
from agent.watchlist.errors import MalformedError, OversizedError
from agent.watchlist.format import MAX_ENTRIES

PLATE_WIDTH: Final = 16
MAX_PRIORITY: Final = 9999
MAX_EXPIRES: Final = 2**32 - 1
"""Unix seconds fit 32 unsigned bits until 2106; the index keeps them as ``uint32``."""
PLATE_RE: Final = re.compile(r"^[A-Z0-9-]{1,16}$")
_TEXT_BAD = re.compile(r"[\x00-\x1f\x7f]")
_CHUNK = 1 << 16

Bytes16 = npt.NDArray[np.bytes_]
Ints = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ListEntry:
    """A watchlist entry as listed: the matcher's entry plus its own expiry (0: never)."""

    plate: str
    reason: str
    case_ref: str = ""
    priority: int = 1
    expires_at: int = 0

    @property
    def entry(self) -> WatchlistEntry:
        return WatchlistEntry(self.plate, self.reason, self.case_ref, self.priority)

    def check(self) -> ListEntry:
        """Return self if every field fits the canonical line; raises MalformedError naming it."""
        if not PLATE_RE.match(self.plate):
            raise MalformedError(f"plate {self.plate!r} is not 1-16 of A-Z, 0-9, '-'")
        if not self.reason or _TEXT_BAD.search(self.reason) or _TEXT_BAD.search(self.case_ref):
            raise MalformedError(f"{self.plate}: reason is empty or a text has control characters")
        if not 0 <= self.priority <= MAX_PRIORITY:
            raise MalformedError(f"{self.plate}: priority {self.priority} is not 0-{MAX_PRIORITY}")
        if not 0 <= self.expires_at <= MAX_EXPIRES:
            raise MalformedError(f"{self.plate}: expires_at {self.expires_at} is out of range")
        return self

    def line(self) -> bytes:
        fields = (self.plate, self.reason, self.case_ref, str(self.priority), str(self.expires_at))
        return ("\t".join(fields) + "\n").encode("utf-8")

    @classmethod
    def from_line(cls, line: bytes) -> ListEntry:
        """Parse one entry line (without or with its newline); raises MalformedError."""
        try:
            fields = line.rstrip(b"\n").decode("utf-8").split("\t")
            plate, reason, case_ref, priority, expires = fields
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedError(
                f"entry line {line[:40]!r} is not 5 tab-separated UTF-8 fields"
            ) from exc
        if not (_canonical_int(priority) and _canonical_int(expires)):
            raise MalformedError(
                f"entry line {line[:40]!r}: priority/expires_at not plain integers"
            )
        return cls(plate, reason, case_ref, int(priority), int(expires)).check()


def _canonical_int(text: str) -> bool:
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))


def as_list_entry(entry: WatchlistEntry | ListEntry) -> ListEntry:
    if isinstance(entry, ListEntry):
        return entry
    return ListEntry(entry.plate, entry.reason, entry.case_ref, entry.priority)


def encode_entries(entries: Iterable[WatchlistEntry | ListEntry]) -> bytes:
    """Canonical full content; a plate given twice keeps its last entry. Raises MalformedError."""
    by_plate = {e.plate: as_list_entry(e).check() for e in entries}
    if len(by_plate) > MAX_ENTRIES:
        raise OversizedError(f"{len(by_plate)} entries (limit {MAX_ENTRIES})")
    ordered = sorted(by_plate.values(), key=lambda e: e.plate.encode("ascii"))
    return b"".join(e.line() for e in ordered)


# -- the table ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EntryTable:
    """Full content plus sorted fixed-width arrays; row ``i`` is the ``i``-th line."""

    content: bytes
    plates: Bytes16
    """Plates as ``S16``, sorted (byte order), unique."""
    starts: U32
    """``n + 1`` offsets: line ``i`` is ``content[starts[i]:starts[i + 1] - 1]``."""
    priority: npt.NDArray[np.uint16]
    expires: U32

    def __len__(self) -> int:
        return len(self.plates)

    def find(self, plate: bytes) -> int:
        """Row of ``plate`` or -1."""
        i = int(np.searchsorted(self.plates, plate))
        if i < len(self.plates) and self.plates[i] == plate:
            return i
        return -1

    def line(self, row: int) -> bytes:
        return self.content[int(self.starts[row]) : int(self.starts[row + 1])]

    def entry(self, row: int) -> ListEntry:
        plate, reason, case_ref, priority, expires = self.line(row)[:-1].decode("utf-8").split("\t")
        return ListEntry(plate, reason, case_ref, int(priority), int(expires))

    def entries(self) -> Iterable[ListEntry]:
        return (self.entry(i) for i in range(len(self)))


EMPTY_TABLE: Final = EntryTable(
    b"",
    np.zeros(0, "S16"),
    np.zeros(1, np.uint32),
    np.zeros(0, np.uint16),
    np.zeros(0, np.uint32),
)

_PLATE_OK = np.zeros(256, np.bool_)
_PLATE_OK[np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", np.uint8)] = True


def _gather(
    buf: npt.NDArray[np.uint8], begin: Ints, length: Ints, width: int
) -> tuple[npt.NDArray[np.uint8], Mask]:
    """Rows of ``width`` bytes from ``buf[begin:begin+length]``, zero-padded; and the valid mask."""
    n = len(begin)
    out = np.zeros((n, width), np.uint8)
    mask = np.zeros((n, width), np.bool_)
    cols = np.arange(width)
    last = len(buf) - 1
    for lo in range(0, n, _CHUNK):
        b, ln = begin[lo : lo + _CHUNK], length[lo : lo + _CHUNK]
        m = cols < ln[:, None]
        idx = np.minimum(b[:, None] + cols, last)
        out[lo : lo + _CHUNK] = np.where(m, buf[idx], 0)
        mask[lo : lo + _CHUNK] = m
    return out, mask


def _digits(buf: npt.NDArray[np.uint8], begin: Ints, end: Ints, width: int, name: str) -> Ints:
    length = end - begin
    if len(length) and (length.min() < 1 or length.max() > width):
        raise MalformedError(f"{name} is empty or longer than {width} digits")
    raw, mask = _gather(buf, begin, length, width)
    if np.any(mask & ((raw < 48) | (raw > 57))):
        raise MalformedError(f"{name} has a non-digit")
    if np.any((length > 1) & (raw[:, 0] == 48)):
        raise MalformedError(f"{name} has a leading zero")
    value = np.zeros(len(begin), np.int64)
    for col in range(width):
        value = np.where(mask[:, col], value * 10 + (raw[:, col].astype(np.int64) - 48), value)
    return value


def _lines(content: bytes) -> tuple[npt.NDArray[np.uint8], Ints, npt.NDArray[np.int64]]:
    """The bytes, the ``n + 1`` line starts and the ``(n, 4)`` tab positions; raises on shape."""
    if content[-1:] != b"\n":
        raise MalformedError("content does not end with a newline")
    buf = np.frombuffer(content, np.uint8)
    if buf.max() >= 0x80:  # only texts may be non-ASCII; check UTF-8 then
        try:
            content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedError(f"content is not UTF-8 at byte {exc.start}") from exc
    newlines = np.flatnonzero(buf == 10)
    n = len(newlines)
    if n > MAX_ENTRIES:
        raise OversizedError(f"{n} entries (limit {MAX_ENTRIES})")
    flat_tabs = np.flatnonzero(buf == 9)
    if len(flat_tabs) != 4 * n or np.count_nonzero(buf < 32) != 5 * n or np.any(buf == 127):
        raise MalformedError("a line does not have exactly 5 fields, or has control characters")
    tabs = flat_tabs.reshape(n, 4)
    starts = np.zeros(n + 1, np.int64)
    starts[1:] = newlines + 1
    # tabs are sorted and 4 per line: each line has its own 4 iff they fall inside it
    if np.any(tabs[:, 0] <= starts[:-1]) or np.any(tabs[:, 3] >= newlines):
        raise MalformedError("a line does not have exactly 5 fields or has an empty plate")
    if np.any(tabs[:, 1] - tabs[:, 0] < 2):
        raise MalformedError("an entry has an empty reason")
    return buf, starts, tabs


def parse_full(content: bytes) -> EntryTable:
    """Check canonical full content and index it; raises MalformedError or OversizedError."""
    if not content:
        return EMPTY_TABLE
    buf, starts, tabs = _lines(content)
    plate_len = tabs[:, 0] - starts[:-1]
    if plate_len.max() > PLATE_WIDTH:
        raise MalformedError(f"a plate is longer than {PLATE_WIDTH} characters")
    raw, mask = _gather(buf, starts[:-1], plate_len, PLATE_WIDTH)
    if not np.all(_PLATE_OK[raw] | ~mask):
        raise MalformedError("a plate has a character other than A-Z, 0-9, '-'")
    plates = raw.view("S16").ravel()
    if len(plates) > 1 and not np.all(plates[1:] > plates[:-1]):
        raise MalformedError("plates are not sorted and unique")
    priority = _digits(buf, tabs[:, 2] + 1, tabs[:, 3], 4, "priority")
    expires = _digits(buf, tabs[:, 3] + 1, starts[1:] - 1, 10, "expires_at")
    if expires.max() > MAX_EXPIRES:
        raise MalformedError(f"an expires_at is past {MAX_EXPIRES}")
    return EntryTable(
        content,
        plates,
        starts.astype(np.uint32),
        priority.astype(np.uint16),
        expires.astype(np.uint32),
    )


# -- deltas -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delta:
    """Changes sorted by plate; ``entries[i]`` (and its ``lines[i]``) is None for a removal."""

    plates: tuple[str, ...]
    entries: tuple[ListEntry | None, ...]
    lines: tuple[bytes | None, ...]


def encode_delta(removes: Iterable[str], upserts: Iterable[ListEntry]) -> bytes:
    """Canonical delta content; raises MalformedError if a plate is both removed and added."""
    changes: dict[str, bytes] = {}
    for plate in removes:
        changes[plate] = f"-\t{plate}\n".encode()
    for entry in upserts:
        if entry.plate in changes:
            raise MalformedError(f"{entry.plate} is both removed and added")
        changes[entry.plate] = b"+\t" + entry.check().line()
    return b"".join(changes[p] for p in sorted(changes, key=lambda p: p.encode("ascii")))


def parse_delta(content: bytes) -> Delta:
    """Parse and check delta content; raises MalformedError."""
    if content and content[-1:] != b"\n":
        raise MalformedError("delta content does not end with a newline")
    plates: list[str] = []
    entries: list[ListEntry | None] = []
    lines: list[bytes | None] = []
    previous = b""
    for raw in content.splitlines(keepends=True):
        op, _, rest = raw.partition(b"\t")
        entry: ListEntry | None = None
        if op == b"-":
            plate = rest.rstrip(b"\n")
            if not PLATE_RE.match(plate.decode("ascii", "replace")) or plate.endswith(b"\r"):
                raise MalformedError(f"delta removes a bad plate {plate[:20]!r}")
        elif op == b"+":
            entry = ListEntry.from_line(rest)
            plate = entry.plate.encode("ascii")
        else:
            raise MalformedError(f"delta line {raw[:40]!r} starts with neither '+' nor '-'")
        if plates and plate <= previous:
            raise MalformedError("delta lines are not sorted by plate, or a plate repeats")
        previous = plate
        plates.append(plate.decode("ascii"))
        entries.append(entry)
        lines.append(None if entry is None else rest)
    return Delta(tuple(plates), tuple(entries), tuple(lines))


@dataclass(frozen=True, eq=False)
class Change:
    """Which plates a delta removed (or replaced) and added, for an index to follow."""

    removed: Bytes16
    """Plates whose old entry is gone (removed or replaced), sorted."""
    added: Bytes16
    """Plates with a new entry (added or replacing), sorted."""


DENSE_SHARE: Final = 64
"""A splice changing more than one element in this many is done with whole-array masks;
a sparser one copies the unchanged runs (fewer passes over a long list)."""


def splice(
    arrays: Sequence[npt.NDArray[Any]],
    removed: Ints,
    inserted_at: Ints,
    inserted: Sequence[npt.ArrayLike],
) -> list[npt.NDArray[Any]]:
    """Arrays after removals and insertions.

    ``removed`` are positions in the old arrays to drop (unique, any order);
    ``inserted[k]`` are the values inserted into ``arrays[k]``, value ``j`` before
    old element ``inserted_at[j]`` (after a removal of that element; values with the
    same position keep their order). A few changes to a long list copy the
    unchanged runs once (a loop over the changes); many changes (a fleet-wide
    rollout rewriting a small list) go through vectorised masks instead, so the
    Python work does not grow with the changes.
    """
    n = len(arrays[0])
    gone = np.sort(np.asarray(removed, np.int64))
    at = np.asarray(inserted_at, np.int64)
    order = np.argsort(at, kind="stable")
    at = at[order]
    values = [np.asarray(v, a.dtype)[order] for a, v in zip(arrays, inserted, strict=True)]
    new_length = n - len(gone) + len(at)
    if (len(gone) + len(at)) * DENSE_SHARE > n:
        return _splice_masked(arrays, gone, at, values, new_length)
    return _splice_runs(arrays, gone, at, values, new_length)


def _splice_masked(
    arrays: Sequence[npt.NDArray[Any]],
    gone: Ints,
    at: Ints,
    values: Sequence[npt.NDArray[Any]],
    new_length: int,
) -> list[npt.NDArray[Any]]:
    # an insert lands after the kept old elements before it and after earlier inserts
    dest = at - np.searchsorted(gone, at) + np.arange(len(at))
    keep = np.ones(len(arrays[0]), np.bool_)
    keep[gone] = False
    from_old = np.ones(new_length, np.bool_)
    from_old[dest] = False
    outs = []
    for old, new_values in zip(arrays, values, strict=True):
        out = np.empty(new_length, old.dtype)
        out[dest] = new_values
        out[from_old] = old[keep]
        outs.append(out)
    return outs


def _splice_runs(
    arrays: Sequence[npt.NDArray[Any]],
    gone: Ints,
    at: Ints,
    values: Sequence[npt.NDArray[Any]],
    new_length: int,
) -> list[npt.NDArray[Any]]:
    outs = [np.empty(new_length, a.dtype) for a in arrays]
    removals, inserts = gone.tolist(), at.tolist()
    src = dst = gi = ai = 0
    while gi < len(removals) or ai < len(inserts):
        p = min(
            removals[gi] if gi < len(removals) else len(arrays[0]),
            inserts[ai] if ai < len(inserts) else len(arrays[0]),
        )
        run = p - src
        if run:
            for old, out in zip(arrays, outs, strict=True):
                out[dst : dst + run] = old[src:p]
            dst, src = dst + run, p
        first = ai
        while ai < len(inserts) and inserts[ai] == p:
            ai += 1
        if ai > first:
            for new_values, out in zip(values, outs, strict=True):
                out[dst : dst + ai - first] = new_values[first:ai]
            dst += ai - first
        if gi < len(removals) and removals[gi] == p:
            src += 1
            gi += 1
    for old, out in zip(arrays, outs, strict=True):
        out[dst:] = old[src:]
    return outs


def apply_delta(table: EntryTable, delta: Delta) -> tuple[EntryTable, Change]:
    """The table after the delta, and what changed; raises MalformedError if a removal is absent.

    Each array is rebuilt in vectorised passes (:func:`splice`); the line starts
    follow from the line lengths; only the content is joined piece by piece.
    """
    n = len(table)
    plates = np.array([p.encode("ascii") for p in delta.plates], "S16")
    pos = np.searchsorted(table.plates, plates)
    present = pos < n
    present[present] = table.plates[pos[present]] == plates[present]
    upsert = np.fromiter((e is not None for e in delta.entries), np.bool_, len(delta.entries))
    absent = ~present & ~upsert
    if absent.any():
        plate = delta.plates[int(absent.argmax())]
        raise MalformedError(f"delta removes {plate}, which the base list does not have")
    added = [e for e in delta.entries if e is not None]
    new_n = n - int(present.sum()) + len(added)
    if new_n > MAX_ENTRIES:
        raise OversizedError(f"the delta makes the list longer than {MAX_ENTRIES} entries")
    new_content = _merge_content(table, delta, pos, present.tolist())
    new_plates, priority, expires, lengths = splice(
        [table.plates, table.priority, table.expires, np.diff(table.starts)],
        pos[present],
        pos[upsert],
        [
            plates[upsert],
            [e.priority for e in added],
            [e.expires_at for e in added],
            [len(line) for line in delta.lines if line is not None],
        ],
    )
    new_starts = np.zeros(new_n + 1, np.uint32)
    np.cumsum(lengths, dtype=np.uint32, out=new_starts[1:])
    new_table = EntryTable(new_content, new_plates, new_starts, priority, expires)
    removed = np.sort(plates[present])
    return new_table, Change(removed, plates[upsert])


def _merge_content(table: EntryTable, delta: Delta, pos: Ints, here: list[bool]) -> bytes:
    n = len(table)
    begin = table.starts[pos].tolist()
    after = table.starts[np.minimum(pos + 1, n)].tolist()
    view = memoryview(table.content)
    pieces: list[bytes | memoryview] = []
    cursor = 0
    for i, line in enumerate(delta.lines):
        pieces.append(view[cursor : begin[i]])
        if line is not None:
            pieces.append(line)
        cursor = after[i] if here[i] else begin[i]
    pieces.append(view[cursor:])
    return b"".join(pieces)
