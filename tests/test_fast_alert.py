"""The alert fast path: one sure, exact read of a listed plate alerts at once.

The alert-latency bench (``raqib bench pipeline``) found that waiting for the
tracker's second read was most of the time from camera to buzzer. A first read
that names a listed plate exactly and is at least ``fast_min_confidence`` sure
now raises the hit in its own frame; anything less sure, and any fuzzy match,
still waits for the vote, and no vehicle raises two hits.
"""

from __future__ import annotations

import numpy as np

from agent.config import TrackerConfig
from agent.frames import Frame
from agent.pipeline import Pipeline
from agent.reads import PlateRead, WatchlistEntry
from agent.tracking import Tracker
from agent.watchlist.matcher import Matcher

LISTED = "25403-W-71"


class ScriptedReader:
    """A plate reader that returns, frame by frame, the reads it was given."""

    def __init__(self, script: list[list[PlateRead]]) -> None:
        self._script = script

    def read(self, image: object) -> list[PlateRead]:
        del image
        return self._script.pop(0) if self._script else []


def read(text: str, conf: float) -> PlateRead:
    return PlateRead(text, "MA", conf, (10, 10, 100, 25))


def run(script: list[list[PlateRead]], threshold: float | None) -> list[tuple[int, int]]:
    """(frame index, n_reads) of every hit the pipeline raises."""
    frames = len(script) + 2
    pipeline = Pipeline(
        ScriptedReader(list(script)),  # type: ignore[arg-type]
        Tracker(gap_s=1.0, min_reads=2),
        Matcher([WatchlistEntry(LISTED, "stolen", "DGSN-1")]),
        "cam-test-01",
        fast_min_confidence=threshold,
    )
    image = np.zeros((48, 64, 3), np.uint8)
    hits = []
    for index in range(frames):
        for hit in pipeline.process(Frame(index, 100 + index * 0.04, index * 0.04, image)):
            hits.append((index, hit.read.n_reads))
    return hits


def test_a_sure_exact_read_alerts_in_its_own_frame_and_only_once() -> None:
    script = [[read(LISTED, 0.99)], [read(LISTED, 0.99)], [read(LISTED, 1.0)]]
    assert run(script, 0.95) == [(0, 1)]
    assert run(script, None) == [(1, 2)]  # without the fast path: at the second read


def test_a_less_sure_read_waits_for_the_vote() -> None:
    script = [[read(LISTED, 0.90)], [read(LISTED, 0.97)]]
    assert run(script, 0.95) == [(1, 2)]


def test_a_fuzzy_match_waits_for_the_vote_however_sure() -> None:
    confused = "25403-W-7I"  # 1 read as I: a fuzzy match, never a fast one
    script = [[read(confused, 1.0)], [read(confused, 1.0)]]
    hits = run(script, 0.95)
    assert hits == [(1, 2)]


def test_a_read_of_another_plate_never_alerts() -> None:
    script = [[read("12345-B-6", 1.0)], [read("12345-B-6", 1.0)]]
    assert run(script, 0.95) == []


def test_the_fast_path_is_on_by_default_and_can_be_turned_off() -> None:
    assert TrackerConfig().fast_alert_threshold == 0.95
    assert TrackerConfig(fast_alert=False).fast_alert_threshold is None


def test_a_track_split_by_dropped_frames_does_not_alert_twice() -> None:
    """Frames dropped for longer than the tracker's gap split one passing into two tracks."""
    script: list[list[PlateRead]] = [[read(LISTED, 0.99)], [read(LISTED, 0.99)]]
    script += [[] for _ in range(30)]  # 1.2 s with no read: the first track closes
    script += [[read(LISTED, 0.99)], [read(LISTED, 0.99)]]
    assert run(script, 0.95) == [(0, 1)]


def test_the_same_plate_passing_again_later_alerts_again() -> None:
    script: list[list[PlateRead]] = [[read(LISTED, 0.99)], [read(LISTED, 0.99)]]
    script += [[] for _ in range(300)]  # 12 s later, past realert_s
    script += [[read(LISTED, 0.99)], [read(LISTED, 0.99)]]
    assert run(script, 0.95) == [(0, 1), (302, 1)]
