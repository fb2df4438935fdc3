"""The matcher: exact hits, OCR-confusion and one-edit hits only for confident reads, expiry,
deltas applied in place."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.reader.plate_text import is_valid
from agent.reads import Match, WatchlistEntry, plate_key
from agent.watchlist.confusion import fold
from agent.watchlist.content import (
    ListEntry,
    apply_delta,
    encode_delta,
    encode_entries,
    parse_delta,
    parse_full,
)
from agent.watchlist.matcher import EditPolicy, Matcher, changes

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


def test_a_sure_read_does_not_reach_a_plate_several_look_alikes_away() -> None:
    """Folding makes ``6863-A-42`` and ``GB-634-AZ`` one key (6/G, 8/B, 4/A, 2/Z): a sure read
    of an unlisted Moroccan car alerted on a French entry. A fuzzy match changes one
    character of the read by default; ``O``/``0`` and ``I``/``1`` count none."""
    listed = [WatchlistEntry("GB-634-AZ", "stolen"), WatchlistEntry("AB-103-CD", "wanted")]
    assert Matcher(listed).match("6863-A-42", 0.99) is None
    assert Matcher(listed, max_changes=16).match("6863-A-42", 0.99) is not None
    assert Matcher(listed).match("A8-1O3-CD", 0.95) == Match(listed[1], "fuzzy")
    assert Matcher(listed).match("A8-1O3-C0", 0.95) is None  # two look-alikes
    assert Matcher(listed, max_changes=2).match("A8-1O3-C0", 0.95) == Match(listed[1], "fuzzy")
    assert Matcher(listed).match("AB-1O3-C", 0.95) == Match(listed[1], "fuzzy")  # one dropped


def test_changes_counts_look_alikes_and_edits_but_not_separators_o_or_i() -> None:
    assert changes(plate_key("AB-1O3-CD"), "AB-103-CD") == 0
    assert changes(plate_key("AB103CD"), "AB-1O3-CD") == 0
    assert changes(plate_key("A8-103-CD"), "AB-103-CD") == 1
    assert changes(plate_key("AB-13-CD"), "AB-103-CD") == 1
    assert changes(plate_key("6863-A-42"), "GB-634-AZ") == 5


def test_fold_maps_each_confusion_class_to_one_key() -> None:
    assert fold("0ODQ") == "0000"
    assert fold("AB-1I8-CD") == fold("4B-118-C0")


# -- the signed-list matcher: expiry, one edit, ranking, deltas, properties ------------

NOW = 1_800_000_000.0
# few symbols, many of them confusable, so generated lists collide under folding
CONFUSABLE = "0ODQ1IL8B5S2Z6G7TA4CX"


def _plates(alphabet: str = CONFUSABLE) -> st.SearchStrategy[str]:
    """Free text over confusable symbols, or well-formed Moroccan plates (small numbers collide)."""
    moroccan = st.builds(
        "{}-{}-{}".format, st.integers(1, 120), st.sampled_from("ABDT"), st.integers(1, 12)
    )
    return st.one_of(st.text(alphabet, min_size=1, max_size=10), moroccan)


def _edit_related(a: str, b: str) -> bool:
    """b is a with one character inserted or removed."""
    if abs(len(a) - len(b)) != 1:
        return False
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def test_expired_entry_never_matches() -> None:
    matcher = Matcher([ListEntry("AB-123-CD", "stolen", "C", 1, int(NOW) + 10)])
    assert matcher.match("AB-123-CD", 0.99, NOW) is not None
    assert matcher.match("AB-123-CD", 0.99, NOW + 10) is None
    assert matcher.match("A8-I23-CD", 0.99, NOW + 10) is None


def test_read_missing_a_character_matches_fuzzy_when_malformed() -> None:
    matcher = Matcher(ENTRIES)
    match = matcher.match("AB-12-CD", 0.95)  # not a valid French plate: a digit was lost
    assert match is not None
    assert (match.kind, match.entry.plate) == ("fuzzy", "AB-123-CD")


def test_well_formed_read_one_edit_away_does_not_match_by_default() -> None:
    matcher = Matcher([WatchlistEntry("1234-B-6", "stolen")])
    assert matcher.match("12345-B-6", 0.99) is None  # a real, different Moroccan plate
    assert Matcher([WatchlistEntry("1234-B-6", "stolen")], edits="always").match(
        "12345-B-6", 0.99
    ) == Match(WatchlistEntry("1234-B-6", "stolen"), "fuzzy")
    assert Matcher(ENTRIES, edits="off").match("AB-12-CD", 0.99) is None


def test_confusion_match_beats_edit_match_and_priority_breaks_ties() -> None:
    entries = [
        WatchlistEntry("AB-123-CD", "stolen", "low", 1),
        WatchlistEntry("A8-123-CD", "stolen", "high", 5),
        WatchlistEntry("AB-1234-CD", "wanted", "edit", 9),
    ]
    match = Matcher(entries, edits="always").match("AB-I23-CD", 0.99)
    assert match is not None
    assert match.entry.case_ref == "high"


def test_fold_drops_separators() -> None:
    assert fold("12345-B-6") == fold("1234586") == "1234586"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_plates(), min_size=1, max_size=30), st.data())
def test_an_exact_entry_is_always_found(plates: list[str], data: st.DataObject) -> None:
    entries = [ListEntry(p, "stolen", str(i), i % 7) for i, p in enumerate(plates)]
    matcher = Matcher(entries)
    plate = data.draw(st.sampled_from(plates))
    match = matcher.match(plate, 0.0, NOW)
    assert match is not None
    assert match.kind == "exact"
    assert match.entry.plate == plate


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_plates(), min_size=1, max_size=30),
    _plates(),
    st.sampled_from(["off", "malformed", "always"]),
    st.sampled_from([1, 2, 16]),
)
def test_fuzzy_matches_exactly_the_confusion_set_and_one_edit(
    plates: list[str], read: str, edits: EditPolicy, max_changes: int
) -> None:
    entries = [ListEntry(p, "stolen") for p in set(plates)]
    match = Matcher(entries, edits=edits, max_changes=max_changes).match(read, 0.99, NOW)
    key = fold(read)
    well_formed = is_valid(read, "MA") or is_valid(read, "FR")
    one_edit = edits == "always" or (edits == "malformed" and not well_formed)
    near = {p for p in set(plates) if changes(plate_key(read), p) <= max_changes}
    confused = {p for p in near if fold(p) == key}
    edited = {p for p in near if one_edit and _edit_related(fold(p), key)}
    related = confused or edited
    if read in set(plates):
        assert match is not None and match.kind == "exact"
    elif related:
        assert match is not None and match.kind == "fuzzy"
        assert match.entry.plate in related
    else:
        assert match is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_plates(), min_size=0, max_size=25, unique=True),
    st.lists(_plates(), min_size=0, max_size=10, unique=True),
    st.data(),
)
def test_delta_applied_in_place_equals_a_rebuilt_list(
    base_plates: list[str], new_plates: list[str], data: st.DataObject
) -> None:
    base = [ListEntry(p, "stolen", "b" * (i % 3), 1, i) for i, p in enumerate(base_plates)]
    removes = data.draw(st.lists(st.sampled_from(base_plates), unique=True)) if base_plates else []
    upserts = [
        ListEntry(p, "wanted", "n" * (i % 4), 3, 2_000_000_000)
        for i, p in enumerate(new_plates)
        if p not in removes
    ]
    result = {e.plate: e for e in base}
    for plate in removes:
        del result[plate]
    result.update({e.plate: e for e in upserts})

    table = parse_full(encode_entries(base))
    new_table, change = apply_delta(table, parse_delta(encode_delta(removes, upserts)))
    assert new_table.content == encode_entries(result.values())
    rebuilt = parse_full(new_table.content)
    assert (new_table.plates == rebuilt.plates).all()
    assert (new_table.starts == rebuilt.starts).all()
    assert (new_table.priority == rebuilt.priority).all()
    assert (new_table.expires == rebuilt.expires).all()

    followed = Matcher.from_table(table, edits="always").updated(new_table, change)
    fresh = Matcher(result.values(), edits="always")
    for probe in [*base_plates, *new_plates, *(p[:-1] for p in new_plates if len(p) > 1)]:
        assert followed.match(probe, 0.99, NOW) == fresh.match(probe, 0.99, NOW)


def test_long_plates_sharing_a_thirteen_character_prefix_are_told_apart() -> None:
    entries = [
        WatchlistEntry("CEFHJKMNPRUVW", "a", "13"),
        WatchlistEntry("CEFHJKMNPRUVWXY", "b", "15"),
        WatchlistEntry("CEFHJKMNPRUVWXYC", "c", "16"),
    ]
    matcher = Matcher(entries)
    for entry in entries:
        found = matcher.match(entry.plate, 0.99)
        assert found == Match(entry, "exact")
    fuzzy = matcher.match("CEFHJKMNPRUVWX", 0.99)  # one short of "...WXY", one past "...W"
    assert fuzzy is not None and fuzzy.kind == "fuzzy"
    assert fuzzy.entry.case_ref in {"13", "15"}
    assert matcher.match("CEFHJKMNPRUVWKYC", 0.99) is None  # a substitution past char 13
