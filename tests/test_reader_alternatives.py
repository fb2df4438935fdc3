"""The reader hands the matcher what it is unsure of; unknown layouts are still reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.reader.alternatives import DOUBT_RATIO, Doubt, alternative_tokens, doubts
from agent.reader.evaluate import same_plate
from agent.reader.pipeline import ModelPlateReader
from agent.reader.plate_text import canonicalize, is_plausible_unknown
from agent.reader.recogniser import Recogniser, _band_glyph_dropped
from agent.reads import Box, PlateRead, WatchlistEntry
from agent.tracking import Tracker
from agent.watchlist.matcher import Matcher

MODELS = Path(__file__).resolve().parent.parent / "models"
CHARSET = "0123456789AB"


def _probs(path: list[dict[str, float]], charset: str = CHARSET) -> np.ndarray:
    """CTC probabilities: one row per step, ``{char: p}`` (the rest goes to the blank)."""
    probs = np.zeros((len(path), len(charset) + 1), np.float32)
    for t, row in enumerate(path):
        for ch, p in row.items():
            probs[t, charset.index(ch) + 1] = p
        probs[t, 0] = 1.0 - sum(row.values())
    return probs


def test_a_character_whose_runner_up_is_close_is_in_doubt() -> None:
    probs = _probs([{"A": 0.9}, {}, {"8": 0.55, "B": 0.4}, {}, {"1": 0.97, "A": 0.01}])
    found = doubts(probs, "A81", [0, 2, 4], CHARSET)
    assert found == [Doubt(1, "B", pytest.approx(0.4 / 0.55))]


def test_no_runner_up_near_the_winner_means_no_doubt() -> None:
    probs = _probs([{"A": 0.9, "B": 0.9 * DOUBT_RATIO * 0.9}, {"1": 0.99}])
    assert doubts(probs, "A1", [0, 1], CHARSET) == []


def test_the_runner_up_is_taken_over_the_whole_run_of_the_character() -> None:
    probs = _probs([{"0": 0.9}, {"0": 0.6, "B": 0.05}, {"0": 0.5, "8": 0.45}])
    assert doubts(probs, "0", [0], CHARSET) == [Doubt(0, "8", pytest.approx(0.45 / 0.9))]


def test_alternatives_swap_one_doubt_then_the_two_most_doubtful_together() -> None:
    found = [Doubt(1, "B", 0.8), Doubt(3, "O", 0.5), Doubt(0, "1", 0.2)]
    assert alternative_tokens("I8C0", found) == ["IBC0", "I8CO", "IBCO"]
    assert alternative_tokens("I8C0", []) == []


class _Scripted(Recogniser):
    """The real recogniser whose model output is replaced by scripted probabilities."""

    script: np.ndarray

    def _infer(self) -> None:
        self._probs[...] = 0.0
        self._probs[:, 0] = 1.0
        self._probs[: len(self.script)] = self.script


def _scripted(rows: list[dict[str, str | float]]) -> _Scripted:
    rec = _Scripted(MODELS / "recogniser.tflite")
    charset = rec.charset
    steps = []
    for row in rows:
        full = np.zeros(len(charset) + 1, np.float32)
        for ch, p in row.items():
            full[charset.index(ch) + 1] = float(p)
        full[0] = 1.0 - full.sum()
        steps.append(full)
        blank = np.zeros(len(charset) + 1, np.float32)
        blank[0] = 1.0
        steps.append(blank)
    rec.script = np.stack(steps)
    return rec


def test_the_recogniser_gives_the_alternatives_of_the_read_it_just_made() -> None:
    rows: list[dict[str, str | float]] = [{c: 0.95} for c in "AB1"]
    rows += [{"0": 0.6, "O": 0.35}, {"3": 0.95}, {"C": 0.95}, {"D": 0.95}]
    rec = _scripted(rows)
    crop = np.full((30, 150, 3), 200, np.uint8)
    raw, _ = rec.read_best(crop)
    assert raw == "AB103CD"
    assert rec.alternatives(raw) == ["AB1O3CD"]
    assert rec.alternatives("SOMETHING-ELSE") == []


def test_the_reader_reports_alternatives_that_are_plates_in_canonical_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows: list[dict[str, str | float]] = [{c: 0.95} for c in "12345\u0628"]
    rows.append({"6": 0.55, "A": 0.4})
    reader = ModelPlateReader(MODELS)
    monkeypatch.setattr(reader, "recogniser", _scripted(rows))
    text, fmt, _conf, alternatives = reader.read_crop_alternatives(
        np.full((30, 150, 3), 200, np.uint8)
    )
    assert (text, fmt) == ("12345-B-6", "MA")
    assert alternatives == ()  # "12345بA" is no plate: not handed on
    rows = [{c: 0.95} for c in "AB"]
    rows += [{"1": 0.95}, {"8": 0.55, "B": 0.4}, {"3": 0.95}, {"C": 0.95}, {"D": 0.95}]
    rows[3] = {"0": 0.55, "8": 0.4}
    monkeypatch.setattr(reader, "recogniser", _scripted(rows))
    assert reader.read_crop_alternatives(np.full((30, 150, 3), 200, np.uint8))[3] == ("AB-183-CD",)


# ------------------------------------------------------------------ the matcher


@pytest.fixture
def listed() -> Matcher:
    return Matcher(
        [WatchlistEntry("12345-B-6", "stolen"), WatchlistEntry("ZH123456", "stolen, Swiss")],
        fuzzy_min_confidence=0.8,
    )


def test_a_doubt_on_a_listed_plate_is_a_fuzzy_match_even_at_low_confidence(
    listed: Matcher,
) -> None:
    assert listed.match("12345-D-6", 0.55) is None
    match = listed.match("12345-D-6", 0.55, alternatives=("12345-B-6",))
    assert match is not None
    assert (match.entry.plate, match.kind) == ("12345-B-6", "fuzzy")


def test_the_read_itself_beats_its_alternatives(listed: Matcher) -> None:
    match = listed.match("ZH123456", 0.9, alternatives=("12345-B-6",))
    assert match is not None
    assert (match.entry.plate, match.kind) == ("ZH123456", "exact")


def test_alternatives_are_not_tried_when_fuzzy_matching_is_off() -> None:
    matcher = Matcher([WatchlistEntry("12345-B-6", "stolen")], fuzzy=False)
    assert matcher.match("12345-D-6", 0.99, alternatives=("12345-B-6",)) is None


def test_an_expired_entry_does_not_match_through_an_alternative() -> None:
    from agent.watchlist.content import ListEntry

    matcher = Matcher([ListEntry("12345-B-6", "stolen", "C-1", 1, 1000)], clock=lambda: 2000.0)
    assert matcher.match("12345-D-6", 0.9, alternatives=("12345-B-6",)) is None


def test_an_unlisted_alternative_or_a_non_ascii_one_matches_nothing(listed: Matcher) -> None:
    assert listed.match("99999-B-6", 0.9, alternatives=("99998-B-6", "\u0628", "")) is None


# ------------------------------------------------------------------ the tracker


def _read(text: str, conf: float, alternatives: tuple[str, ...] = ()) -> PlateRead:
    box: Box = (10, 10, 100, 25)
    return PlateRead(text, canonicalize(text)[1], conf, box, alternatives)


def test_a_voted_read_carries_the_other_votes_and_the_readers_alternatives() -> None:
    tracker = Tracker(gap_s=1.0, min_reads=2)
    assert tracker.observe([_read("12345-D-6", 0.7, ("12345-B-6",))], 0.0, 0) == []
    (voted,) = tracker.observe([_read("12345-H-6", 0.3)], 0.1, 1)
    assert voted.text == "12345-D-6"
    assert voted.alternatives == ("12345-H-6", "12345-B-6")  # other votes first


# ------------------------------------------------------------------ unknown layouts


@pytest.mark.parametrize(
    ("raw", "plausible"),
    [
        ("ZH123456", True),  # Swiss
        ("CA1234AB", True),  # Bulgarian
        ("1AB2345", True),  # Czech
        ("ABCDEF", False),  # no digit
        ("AB1", False),  # too short
        ("AB123456789CD", False),  # too long
        ("12345\u062826", False),  # a Moroccan plate, valid: not unknown
        ("1234\u0628", False),  # a broken Moroccan read is not a foreign plate
        ("AB-123-CD", False),  # French: a known format
    ],
)
def test_a_plausible_plate_of_an_unknown_layout(raw: str, plausible: bool) -> None:
    assert is_plausible_unknown(raw) is plausible


@pytest.mark.parametrize(
    ("raw", "confidence", "plausible"),
    [
        ("WEFLYN", 0.95, True),  # a personalised plate, read sure
        ("WEFLYN", 0.5, False),  # letters only and doubtful: a sign as likely as a plate
        ("ABC", 0.99, False),  # too short, however sure
        ("CA1234AB", 0.1, True),  # with a digit the confidence does not matter
    ],
)
def test_a_plate_of_letters_only_is_plausible_only_when_read_sure(
    raw: str, confidence: float, plausible: bool
) -> None:
    assert is_plausible_unknown(raw, confidence) is plausible


def test_exact_accuracy_takes_o_and_zero_i_and_one_as_one_character() -> None:
    assert same_plate("AB-1O3-CD", "AB-103-CD")
    assert same_plate("ZHI23456", "ZH123456")
    assert same_plate("AB103CD", "AB-103-CD")
    assert not same_plate("AB-183-CD", "AB-103-CD")
    assert not same_plate("", "")


@pytest.mark.parametrize(
    ("raw", "fitted", "dropped"),
    [
        ("1ER140CY", "ER140CY", True),  # the band's F read as a 1 before a French plate
        ("ER140CYI", "ER140CY", True),  # the region logo's edge after it
        ("1AB2345", "AB2345", False),  # a Czech plate keeps its leading 1
        ("VNK296GP", "NK296GP", False),  # an eight-character plate keeps its first letter
        ("BT63UYN", "BT63YN", False),  # never a character from the middle
        ("1AB123", "AB123", False),  # what is left must be a French SIV plate
    ],
)
def test_only_a_band_glyph_at_the_edge_of_a_french_plate_is_dropped_from_a_sure_read(
    raw: str, fitted: str, dropped: bool
) -> None:
    assert _band_glyph_dropped(raw, fitted) is dropped
