"""Canonical plate text: what the matcher, the watchlist and HQ all compare."""

from __future__ import annotations

import numpy as np
import pytest

from agent.reader.plate_text import ARABIC_TO_LATIN, canonicalize, is_valid, raw_tokens
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


@pytest.mark.parametrize("raw", ["AI123CD", "AB000CD", "OB123CD", "AB123CU"])
def test_siv_with_forbidden_letters_or_000_is_unknown(raw: str) -> None:
    assert canonicalize(raw)[1] == "UNKNOWN"


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
