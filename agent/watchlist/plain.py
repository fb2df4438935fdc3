"""A plain CSV watchlist (``plate,reason,case_ref,priority``) for the foundation.

Signed, versioned lists replace this file format; the entries they yield are the
same ``WatchlistEntry`` values, so the matcher does not change.
"""

from __future__ import annotations

import csv
from pathlib import Path

from agent.errors import WatchlistError
from agent.reader.plate_text import canonicalize
from agent.reads import WatchlistEntry

REQUIRED_COLUMNS = ("plate", "reason")
MAX_ENTRIES = 2_000_000


def _entry(row: dict[str, str], line: int, path: Path) -> WatchlistEntry:
    raw = (row.get("plate") or "").strip()
    reason = (row.get("reason") or "").strip()
    if not raw or not reason:
        raise WatchlistError(f"{path}:{line}: plate and reason are required")
    text, _fmt = canonicalize(raw)
    priority_text = (row.get("priority") or "1").strip()
    if not priority_text.isdigit():
        raise WatchlistError(f"{path}:{line}: priority {priority_text!r} is not a whole number")
    return WatchlistEntry(text, reason, (row.get("case_ref") or "").strip(), int(priority_text))


def load_plain_watchlist(path: Path) -> list[WatchlistEntry]:
    """Read and check every row; raises WatchlistError naming the file and line."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise WatchlistError(f"{path}: missing column(s) {', '.join(missing)}")
            entries: list[WatchlistEntry] = []
            for line, row in enumerate(reader, start=2):
                if len(entries) >= MAX_ENTRIES:
                    raise WatchlistError(f"{path}: more than {MAX_ENTRIES} entries")
                entries.append(_entry(row, line, path))
    except OSError as exc:
        raise WatchlistError(f"cannot read watchlist {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise WatchlistError(f"watchlist {path} is not a UTF-8 CSV file: {exc}") from exc
    return entries
