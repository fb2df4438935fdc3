"""Would a labelled plate's read alert? The real matcher on crafted reads and lists."""

from __future__ import annotations

import math

from agent.reader.alert_check import alert_figures
from agent.reader.evaluate import ScoredRead
from agent.reads import WatchlistEntry
from agent.watchlist.matcher import MatchPolicy


def _list(*plates: str) -> list[WatchlistEntry]:
    return [WatchlistEntry(p, "stolen") for p in plates]


def test_a_listed_plate_read_exactly_alerts_on_its_own_entry() -> None:
    reads = [ScoredRead("AB-123-CD", "AB-123-CD", 0.99), ScoredRead("48213-D-27", "", 0.0)]
    figures = alert_figures(reads, [], _list("ZZ-999-ZZ"), MatchPolicy())
    assert figures["alert_plates"] == 2
    assert figures["alert_listed_rate"] == 0.5  # the plate read nothing cannot alert
    assert figures["alert_misdirected_rate"] == 0.0
    assert figures["alert_unlisted_rate"] == 0.0


def test_a_confused_character_alerts_when_the_read_is_sure_enough() -> None:
    """``D`` read as ``0``: a fuzzy match from ``fuzzy_min_confidence``, as in the daemon."""
    sure = [ScoredRead("AB-123-CD", "AB-123-C0", 0.9)]
    unsure = [ScoredRead("AB-123-CD", "AB-123-C0", 0.6)]
    assert alert_figures(sure, [], [], MatchPolicy())["alert_listed_rate"] == 1.0
    assert alert_figures(unsure, [], [], MatchPolicy())["alert_listed_rate"] == 0.0
    lenient = MatchPolicy(fuzzy_min_confidence=0.5)
    assert alert_figures(unsure, [], [], lenient)["alert_listed_rate"] == 1.0


def test_the_readers_alternatives_reach_the_matcher() -> None:
    doubtful = [ScoredRead("AB-123-CD", "AB-128-CD", 0.3, ("AB-123-CD",))]
    assert alert_figures(doubtful, [], [], MatchPolicy())["alert_listed_rate"] == 1.0


def test_a_misread_naming_another_listed_plate_is_a_misdirected_alert() -> None:
    reads = [ScoredRead("AB-123-CD", "AB-128-CD", 0.95)]
    figures = alert_figures(reads, [], _list("AB-128-CD"), MatchPolicy())
    assert figures["alert_listed_rate"] == 0.0
    assert figures["alert_misdirected_rate"] == 1.0
    assert figures["alert_unlisted_rate"] == 1.0  # not listed, it still stops a car


def test_a_plate_not_listed_alerts_only_through_a_listed_look_alike() -> None:
    reads = [ScoredRead("AB-123-CB", "AB-123-CB", 0.95), ScoredRead("XY-456-ZW", "XY-456-ZW", 0.95)]
    figures = alert_figures(reads, [], _list("AB-123-C8"), MatchPolicy())
    assert figures["alert_listed_rate"] == 1.0  # exact beats the look-alike
    assert figures["alert_unlisted_rate"] == 0.5  # B / 8: the fuzzy match's price


def test_entries_that_are_labelled_plates_are_taken_off_the_list() -> None:
    """Otherwise "not listed" would count a generated entry that happens to be the car.
    ``O``/``0`` and separators do not make another plate."""
    reads = [ScoredRead("1O-A-5", "10-A-5", 0.99)]
    figures = alert_figures(reads, [], _list("10A5", "77-B-7"), MatchPolicy())
    assert figures["watchlist_entries"] == 1
    assert figures["alert_unlisted_rate"] == 0.0
    assert figures["alert_listed_rate"] == 1.0


def test_stray_texts_count_when_they_alert() -> None:
    stray = [
        ScoredRead("", "77-B-7", 0.9),
        ScoredRead("", "TAXI", 0.9),
        ScoredRead("", "", 0.0),
    ]
    figures = alert_figures([], stray, _list("77-B-7"), MatchPolicy())
    assert (figures["stray_reads"], figures["stray_alerts"]) == (2, 1)
    assert math.isnan(figures["alert_listed_rate"])  # no labelled plate: no rate
