"""Would the reads of a labelled folder alert? ``raqib eval DIR --watchlist N``.

Exact-plate accuracy counts a read with the Swiss shield taken for a ``0`` as wrong; the
officer's question is whether the car would have alerted. Each read that ``raqib eval``
scores (the read ``raqib read`` reports for the plate, crops from the photos' floor) goes
once through the real :class:`~agent.watchlist.matcher.Matcher`, exactly as the daemon
matches a voted read: exact, confusion-class fuzzy from ``fuzzy_min_confidence``, one edit
for malformed reads (``edits``), at most ``fuzzy_max_changes`` characters changed, and the
reader's alternatives. One read per plate, no tracker votes over frames (``raqib eval
--as-video`` gives the camera's single-frame read).

The list: ``N`` generated entries (agent.watchlist.bench: 70 % Moroccan, 30 % French SIV,
the density of a national list) with every labelled plate of the folder removed from them
(an entry that *is* a labelled plate would make "not listed" false), then:

- ``alert_listed_rate``: every labelled plate listed too; the share of plates whose read
  alerts on that plate's own entry (what a stolen car on the list gets);
- ``alert_misdirected_rate``: same list; reads that alert on *another* entry (the wrong
  car flagged: an officer stops a driver for a plate that was not there);
- ``alert_unlisted_rate``: labelled plates not listed; reads that alert on any entry (the
  false-alert price of fuzzy matching, paid by real reads of real plates);
- ``stray_reads`` / ``stray_alerts``: texts read in photos away from every labelled box
  (signs, stickers, other cars' plates left unlabelled) and those that alert on the list
  with the labelled plates listed.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.reader.evaluate import ScoredRead
from agent.reads import WatchlistEntry, plate_key
from agent.watchlist.content import ListEntry
from agent.watchlist.matcher import MatchPolicy


def alert_figures(
    reads: Sequence[ScoredRead],
    stray: Sequence[ScoredRead],
    background: Sequence[WatchlistEntry | ListEntry],
    policy: MatchPolicy,
) -> dict[str, float]:
    """The figures of the module docstring, ``background`` being the generated list."""
    labelled = {plate_key(r.truth): r.truth for r in reads if r.truth}
    others: list[WatchlistEntry | ListEntry] = [
        e for e in background if plate_key(e.plate) not in labelled
    ]
    listed = policy.matcher([*others, *(WatchlistEntry(t, "listed") for t in labelled.values())])
    unlisted = policy.matcher(others)
    own = misdirected = false = 0
    for read in reads:
        if not read.text:
            continue
        hit = listed.match(read.text, read.confidence, alternatives=read.alternatives)
        if hit is not None:
            if plate_key(hit.entry.plate) == plate_key(read.truth):
                own += 1
            else:
                misdirected += 1
        false += (
            unlisted.match(read.text, read.confidence, alternatives=read.alternatives) is not None
        )
    stray_alerts = sum(
        listed.match(r.text, r.confidence, alternatives=r.alternatives) is not None
        for r in stray
        if r.text
    )
    n = len(reads)
    return {
        "watchlist_entries": float(len(others)),
        "alert_plates": float(n),
        "alert_listed_rate": own / n if n else float("nan"),
        "alert_misdirected_rate": misdirected / n if n else float("nan"),
        "alert_unlisted_rate": false / n if n else float("nan"),
        "stray_reads": float(len([r for r in stray if r.text])),
        "stray_alerts": float(stray_alerts),
    }
