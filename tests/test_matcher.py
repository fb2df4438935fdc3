"""The matcher: exact hits, OCR-confusion hits only for confident reads, plain CSV lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import WatchlistError
from agent.reads import WatchlistEntry
from agent.watchlist.confusion import fold
from agent.watchlist.matcher import Matcher
from agent.watchlist.plain import load_plain_watchlist

ENTRIES = [
    WatchlistEntry("12345-B-6", "stolen", "C-1", 2),
    WatchlistEntry("AB-123-CD", "wanted", "C-2", 3),
]


def test_exact_read_matches_exactly() -> None:
    match = Matcher(ENTRIES).match("AB-123-CD", 0.5)
    assert match is not None
    assert match.kind == "exact"
    assert match.entry.case_ref == "C-2"


def test_confused_read_matches_fuzzy_when_confident() -> None:
    match = Matcher(ENTRIES).match("A8-I23-CD", 0.95)
    assert match is not None
    assert match.kind == "fuzzy"
    assert match.entry.plate == "AB-123-CD"


def test_confused_read_below_fuzzy_confidence_does_not_match() -> None:
    assert Matcher(ENTRIES, fuzzy_min_confidence=0.9).match("A8-I23-CD", 0.85) is None


def test_fuzzy_matching_can_be_switched_off() -> None:
    assert Matcher(ENTRIES, fuzzy=False).match("A8-I23-CD", 0.99) is None


def test_a_different_plate_never_matches() -> None:
    assert Matcher(ENTRIES).match("AB-124-CD", 0.99) is None
    assert Matcher(ENTRIES).match("12345-W-6", 0.99) is None


def test_fold_maps_each_confusion_class_to_one_key() -> None:
    assert fold("0ODQ") == "0000"
    assert fold("AB-1I8-CD") == fold("4B-118-C0")


def test_plain_csv_list_loads_canonical_entries(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("plate,reason,case_ref,priority\nAB-123-CD,stolen,C-9,2\n", encoding="utf-8")
    (entry,) = load_plain_watchlist(path)
    assert entry == WatchlistEntry("AB-123-CD", "stolen", "C-9", 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("plate,case_ref\nAB-123-CD,C\n", "missing column"),
        ("plate,reason\n,stolen\n", ":2: plate and reason are required"),
        ("plate,reason,priority\nAB-123-CD,stolen,high\n", "priority 'high'"),
    ],
)
def test_broken_csv_list_is_refused_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "list.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(WatchlistError, match=message):
        load_plain_watchlist(path)


def test_missing_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WatchlistError, match="cannot read watchlist"):
        load_plain_watchlist(tmp_path / "none.csv")
