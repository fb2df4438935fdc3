"""Canonical plate text: what the matcher, the watchlist and HQ all compare."""

from __future__ import annotations

import numpy as np
import pytest

from agent.reader.layout import label_tokens, logical_raw
from agent.reader.plate_text import (
    ARABIC_TO_LATIN,
    EU_PATTERNS,
    canonicalize,
    eu_country,
    is_valid,
    raw_tokens,
    two_line_parts,
)
from agent.synth.plates import random_plate_text


@pytest.mark.parametrize(
    ("arabic", "latin"),
    [
        ("\u0623", "A"),
        ("\u0628", "B"),
        ("\u062f", "D"),
        ("\u0647", "H"),
        ("\u0648", "W"),
        ("\u0637", "T"),
        ("\u064a", "Y"),
        ("\u0634", "SH"),
    ],
)
def test_moroccan_series_letter_is_transliterated_with_the_fixed_table(
    arabic: str, latin: str
) -> None:
    assert ARABIC_TO_LATIN[arabic] == latin
    assert canonicalize(f"12345{arabic}6") == (f"12345-{latin}-6", "MA")


def test_moroccan_read_with_bars_spaces_and_leading_zeros_is_canonical() -> None:
    assert canonicalize(" 00123 | \u0628 | 06 ") == ("123-B-6", "MA")


def test_arabic_letter_variants_and_arabic_indic_digits_are_folded() -> None:
    assert canonicalize("\u0661\u0662\u0627\u0663") == ("12-A-3", "MA")  # bare alif, Indic digits
    assert canonicalize("45\u06be7") == ("45-H-7", "MA")  # heh doachashmee
    assert canonicalize("45\ufeeb7") == ("45-H-7", "MA")  # presentation form of heh


def test_already_canonical_moroccan_text_is_unchanged() -> None:
    assert canonicalize("12345-B-6") == ("12345-B-6", "MA")
    assert canonicalize("12-sh-3") == ("12-SH-3", "MA")


@pytest.mark.parametrize("raw", ["12345\u062890", "123456\u06286", "12345\u06280", "0\u06286"])
def test_moroccan_region_outside_1_to_89_or_long_serial_is_not_moroccan(raw: str) -> None:
    assert canonicalize(raw)[1] != "MA"


@pytest.mark.parametrize("raw", ["AB123CD", "ab-123-cd", "AB 123 CD", "ab|123|cd"])
def test_french_siv_plate_is_dashed_upper_case(raw: str) -> None:
    assert canonicalize(raw) == ("AB-123-CD", "FR")


@pytest.mark.parametrize("raw", ["AI123CD", "OB123CD", "AB123CU"])
def test_siv_shape_with_forbidden_letters_is_an_italian_eu_plate(raw: str) -> None:
    assert canonicalize(raw) == (f"{raw[:2]}-{raw[2:5]}-{raw[5:]}", "EU")


def test_siv_shape_with_000_is_unknown() -> None:
    assert canonicalize("AB000CD") == ("AB000CD", "UNKNOWN")


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("123 AB 45", "123-AB-45"), ("1234ABC2A", "1234-ABC-2A"), ("12XY974", "12-XY-974")],
)
def test_old_french_fni_plate_is_recognised(raw: str, canonical: str) -> None:
    assert canonicalize(raw) == (canonical, "FR")


def test_anything_else_is_unknown_upper_case_alphanumerics() -> None:
    assert canonicalize("ab 12-x!") == ("AB12X", "UNKNOWN")
    assert canonicalize("B-1234-XY") == ("B1234XY", "UNKNOWN")


@pytest.mark.parametrize("raw", ["", "   ", "-|-", "\u0628", "7"])
def test_input_with_fewer_than_two_alphanumerics_is_an_invalid_unknown(raw: str) -> None:
    text, fmt = canonicalize(raw)
    assert fmt == "UNKNOWN"
    assert not is_valid(text, fmt)


def test_is_valid_accepts_only_canonical_spellings_of_the_format() -> None:
    assert is_valid("12345-B-6", "MA")
    assert not is_valid("12345B6", "MA")
    assert not is_valid("012-B-6", "MA")
    assert not is_valid("12-B-90", "MA")
    assert is_valid("AB-123-CD", "FR")
    assert is_valid("123-AB-45", "FR")
    assert not is_valid("AB123CD", "FR")
    assert not is_valid("12345-B-6", "FR")
    assert is_valid("AB12X", "UNKNOWN")
    assert not is_valid("ab12x", "UNKNOWN")
    assert not is_valid("AB-123-CD", "EU")


def test_raw_tokens_is_the_inverse_of_canonicalize_for_generated_plates() -> None:
    rng = np.random.default_rng(3)
    for fmt in ("MA", "FR") * 200:
        text = random_plate_text(rng, fmt)
        assert canonicalize(raw_tokens(text)) == (text, fmt)
        assert is_valid(text, fmt)


def test_raw_tokens_of_moroccan_plate_carries_the_arabic_letter() -> None:
    assert raw_tokens("12345-B-6") == "12345\u06286"
    assert raw_tokens("AB-123-CD") == "AB123CD"


@pytest.mark.parametrize("raw", ["599625WW", "599625 WW", "599625-ww", "599625|WW"])
def test_moroccan_temporary_ww_plate_is_serial_dash_ww(raw: str) -> None:
    assert canonicalize(raw) == ("599625-WW", "MA")
    assert is_valid("599625-WW", "MA")
    assert raw_tokens("599625-WW") == "599625WW"


def test_temporary_plate_with_leading_zero_or_seven_digits_is_not_moroccan() -> None:
    assert not is_valid("0599625-WW", "MA")
    assert canonicalize("1234567WW")[1] == "UNKNOWN"


# ------------------------------------------------------------ new formats


@pytest.mark.parametrize("raw", ["8|013353", "8-013353", " 8 | 013353 ", "08|013353"])
def test_moroccan_motorcycle_plate_is_region_dash_six_digit_serial(raw: str) -> None:
    assert canonicalize(raw) == ("8-013353", "MA")
    assert is_valid("8-013353", "MA")


@pytest.mark.parametrize(
    "raw", ["8013353", "0|013353", "90|013353", "8|13353", "8|0133530", "8|000000"]
)
def test_motorcycle_needs_a_separator_a_region_1_to_89_and_six_digits(raw: str) -> None:
    assert canonicalize(raw)[1] != "MA"


def test_moroccan_motorcycle_round_trips_through_its_two_lines() -> None:
    assert two_line_parts("8-013353") == ("8", "013353")
    assert raw_tokens("8-013353") == label_tokens("8", "013353") == "8013353"
    assert logical_raw("8", "013353") == "8|013353"
    assert not is_valid("08-013353", "MA")


@pytest.mark.parametrize("raw", ["W18123456", "w18 123456", "W18-123456", "W18|123456"])
def test_w18_series_is_w18_dash_serial(raw: str) -> None:
    assert canonicalize(raw) == ("W18-123456", "MA")
    assert raw_tokens("W18-123456") == "W18123456"
    assert is_valid("W18-123456", "MA")
    assert not is_valid("W18-0123", "MA")


def test_w18_with_zero_or_seven_digit_serial_is_not_moroccan() -> None:
    assert canonicalize("W18000")[1] != "MA"
    assert canonicalize("W181234567")[1] != "MA"


@pytest.mark.parametrize(
    "raw", ["123456M", "123456 M", "123456-m", "123456 \u0627\u0644\u0645\u063a\u0631\u0628"]
)
def test_state_vehicle_plate_is_six_digits_dash_m(raw: str) -> None:
    assert canonicalize(raw) == ("123456-M", "MA")
    assert raw_tokens("123456-M") == "123456M"
    assert is_valid("123456-M", "MA")


@pytest.mark.parametrize("raw", ["12345M", "1234567M", "000000M"])
def test_state_plate_needs_exactly_six_digits(raw: str) -> None:
    assert canonicalize(raw)[1] != "MA"


def test_state_plate_keeps_leading_zeros() -> None:
    assert canonicalize("012345M") == ("012345-M", "MA")


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("CD12319", "CD-123-19"),
        ("cd 123 19", "CD-123-19"),
        ("CD-5-01", "CD-5-01"),
        ("CD1219", "CD-12-19"),
        ("CMD12319", "CMD-123-19"),
        ("CMD-7-42", "CMD-7-42"),
    ],
)
def test_diplomatic_plate_is_cd_serial_embassy(raw: str, canonical: str) -> None:
    assert canonicalize(raw) == (canonical, "MA")
    assert is_valid(canonical, "MA")
    assert canonicalize(raw_tokens(canonical)) == (canonical, "MA")


@pytest.mark.parametrize("raw", ["CD12300", "CD0001", "CD123419"])
def test_diplomatic_plate_with_embassy_00_or_bad_serial_is_not_moroccan(raw: str) -> None:
    assert canonicalize(raw)[1] != "MA"


def test_two_line_car_plate_has_the_one_line_canonical_text() -> None:
    top, bottom = two_line_parts("45498-B-26") or ("", "")
    assert (top, bottom) == ("\u062826", "45498")
    assert logical_raw(top, bottom) == "45498\u062826"
    assert canonicalize(logical_raw(top, bottom)) == ("45498-B-26", "MA")
    assert raw_tokens("45498-B-26") == "45498\u062826"
    assert two_line_parts("12-SH-3") == ("\u06343", "12")


@pytest.mark.parametrize(
    "text", ["599625-WW", "W18-12", "123456-M", "CD-1-01", "AB-123-CD", "123-AB-45", "1234-BCD"]
)
def test_plates_without_a_two_line_layout_have_no_two_line_parts(text: str) -> None:
    assert two_line_parts(text) is None


@pytest.mark.parametrize("raw", ["B839AR", "G006LE", "AB123C", "1CQY20", "K123BY"])
def test_a_dutch_shape_with_a_vowel_c_q_or_y_is_no_dutch_plate(raw: str) -> None:
    """Dutch plates of these shapes print no vowel, ``Y``, ``C`` or ``Q``: such a read is a
    Bucharest plate missing a letter (``B839AR`` of ``B-839-HAR``), a vanity plate
    (``G006LE``) or another country's, and must not count as a known layout."""
    assert eu_country(raw) != "NL"
    assert canonicalize(raw) == (raw, "UNKNOWN")


@pytest.mark.parametrize("raw", ["XTX0582", "JR75665", "AB12345", "MW12345"])
def test_a_polish_shape_without_a_voivodeship_letter_is_no_polish_plate(raw: str) -> None:
    """A Polish plate starts with its voivodeship's letter (or ``H``, ``U``): ``XTX0582`` is
    a Greek ``XTX 582`` with its sticker read as a ``0``, not a plate of Poland."""
    assert eu_country(raw) != "PL"
    assert canonicalize(raw) == (raw, "UNKNOWN")


@pytest.mark.parametrize(
    ("raw", "canonical", "country"),
    [
        ("1234BCD", "1234-BCD", "ES"),
        ("1234 bcd", "1234-BCD", "ES"),
        ("B AB 1234", "BAB-1234", "DE"),
        ("MAX 1E", "MAX-1-E", "DE"),
        ("AB 123 IO", "AB-123-IO", "IT"),
        ("1-ABC-123", "1-ABC-123", "BE"),
        ("GB-123-D", "GB-123-D", "NL"),
        ("1-KLV-20", "1-KLV-20", "NL"),  # 1-KLV-12 would be an FNI
        ("K-123-BR", "K-123-BR", "NL"),
        ("12-HXZ-1", "12-HXZ-1", "NL"),
        ("AB-12-CD", "AB-12-CD", "PT"),
        ("12-AB-99", "12-AB-99", "PT"),
        ("1234-AB", "1234-AB", "PT"),
        ("WA 12345", "WA-12345", "PL"),
        ("B 123 ABC", "B-123-ABC", "RO"),
        ("B 12 XYZ", "B-12-XYZ", "RO"),
        ("CJ 12 ABC", "CJ-12-ABC", "GB"),  # a Romanian county plate has the British shape
        ("BT63 UYN", "BT-63-UYN", "GB"),
    ],
)
def test_eu_plate_is_runs_of_letters_and_digits(raw: str, canonical: str, country: str) -> None:
    assert canonicalize(raw) == (canonical, "EU")
    assert eu_country(canonical.replace("-", "")) == country
    assert is_valid(canonical, "EU")
    assert canonicalize(raw_tokens(canonical)) == (canonical, "EU")


@pytest.mark.parametrize("raw", ["CMA0", "HWX0", "AB012", "MAX0E"])
def test_a_german_number_never_starts_with_zero(raw: str) -> None:
    """German numbers run from 1 to 9999: a read whose digits start with ``0`` (a plate's
    ``O`` or a badge read surely: the Polish ``CRA 01JE`` read ``CRA-01``) is no German
    plate, so it is not reported as one."""
    text, fmt = canonicalize(raw)
    assert fmt == "UNKNOWN"
    assert not is_valid(text, "EU")
    assert canonicalize(raw.replace("0", "9"))[1] == "EU"  # from 1 it is one


@pytest.mark.parametrize("raw", ["GP9", "SP6", "BA3", "FR1"])
def test_a_german_shaped_read_of_three_characters_is_no_plate(raw: str) -> None:
    """Two letters and one digit: German plates of three characters exist (``M-A-1``) but
    are rare, and such reads are far more often a sign or a badge (``SP-6``, ``BA-3`` in the
    Romanian rides' frames; no plate of that shape among the real sets' labels)."""
    assert canonicalize(raw)[1] == "UNKNOWN"
    assert canonicalize(raw + "1") == (f"{raw[:2]}-{raw[2:]}1", "EU")


def test_a_belgian_plate_starts_with_the_series_digit_1_or_2() -> None:
    """Belgium's series began at ``1-AAA-001`` in 2010 and went on at ``2-`` in 2021; a
    Swedish ``KFJ 492`` whose tax sticker (a ``5``) is read before it is no Belgian plate."""
    assert canonicalize("2ABC123") == ("2-ABC-123", "EU")
    assert canonicalize("5KFJ492") == ("5KFJ492", "UNKNOWN")
    assert canonicalize("KFJ492") == ("KFJ-492", "EU")


def test_eu_patterns_cover_the_nine_countries() -> None:
    assert {c for c, _ in EU_PATTERNS} == {"ES", "DE", "IT", "BE", "NL", "PT", "PL", "RO", "GB"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("123-AB-45", ("123-AB-45", "FR")),  # FNI stays French (PT shape comes after)
        ("12AB34", ("12-AB-34", "FR")),
        ("AB123CD", ("AB-123-CD", "FR")),  # SIV stays French (IT shape comes after)
        ("12345\u06286", ("12345-B-6", "MA")),
        ("599625WW", ("599625-WW", "MA")),
    ],
)
def test_formats_valid_before_the_eu_patterns_keep_their_format(
    raw: str, expected: tuple[str, str]
) -> None:
    assert canonicalize(raw) == expected


@pytest.mark.parametrize("raw", ["1234AEI", "B1234XY", "ABCDEF12345", "A1B2C3"])
def test_eu_shaped_text_outside_the_patterns_is_unknown(raw: str) -> None:
    assert canonicalize(raw)[1] == "UNKNOWN"


def test_is_valid_eu_needs_the_canonical_spelling_and_a_pattern() -> None:
    assert is_valid("1-ABC-123", "EU")
    assert not is_valid("1ABC123", "EU")
    assert not is_valid("1-abc-123", "EU")
    assert not is_valid("AB-123-CD", "EU")  # French
    assert not is_valid("B-1234-XY", "EU")
    assert not is_valid("1234-BCD", "MA")


@pytest.mark.parametrize(
    "text",
    [
        "12345-B-6",
        "45498-B-26",
        "599625-WW",
        "W18-123456",
        "W18-7",
        "123456-M",
        "CD-123-19",
        "CMD-1-05",
        "AB-123-CD",
        "123-AB-45",
        "1234-BCD",
        "BAB-1234",
        "AB-123-ID",
        "1-ABC-123",
        "GB-123-D",
        "AB-12-CD",
        "WA-12345",
    ],
)
def test_raw_tokens_round_trip_for_every_format(text: str) -> None:
    fmt = canonicalize(text)[1]
    assert fmt != "UNKNOWN"
    assert canonicalize(raw_tokens(text)) == (text, fmt)
    assert is_valid(text, fmt)


def test_motorcycle_round_trip_goes_through_the_two_line_read() -> None:
    for text in ("8-013353", "1-000001", "89-999999"):
        parts = two_line_parts(text)
        assert parts is not None
        assert canonicalize(logical_raw(*parts)) == (text, "MA")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("4604-SH-09", ("4604-SH-09", "FR")),  # a department has its leading zero
        ("12-B-06", ("12-B-06", "FR")),
        ("4604-SH-9", ("4604-SH-9", "MA")),  # a region never has one
        ("123-B-45", ("123-B-45", "MA")),
    ],
)
def test_a_dashed_text_with_a_latin_series_letter_is_moroccan_unless_its_tail_is_zero_padded(
    raw: str, expected: tuple[str, str]
) -> None:
    assert canonicalize(raw) == expected
