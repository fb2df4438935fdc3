"""Two-line plate layout: line split, composite strip, token order (no model)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agent.reader.layout import (
    GAP_FRACTION,
    TWO_LINE_MAX_ASPECT,
    label_tokens,
    logical_raw,
    maybe_two_line,
    split_by_position,
    split_row,
    two_line_composite,
)

BA = "\u0628"
SHEEN = "\u0634"
HEH = "\u0647"
WAW = "\u0648"


def _two_line_image(divider: bool = False) -> tuple[np.ndarray, int, int]:
    """A 120 x 140 plate, "AB" over "123"; also the last ink row on top and first below."""
    gray = np.full((120, 140), 235, np.uint8)
    cv2.putText(gray, "AB", (30, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 20, 4)
    cv2.putText(gray, "123", (15, 105), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 20, 4)
    ink = np.flatnonzero((gray < 128).any(axis=1))
    top_end = int(ink[ink < 60].max())
    bottom_start = int(ink[ink >= 60].min())
    if divider:
        gray[(top_end + bottom_start) // 2, 5:-5] = 60
    return gray, top_end, bottom_start


@pytest.mark.parametrize("divider", [False, True], ids=["plain", "divider"])
def test_split_row_falls_in_the_gap_between_the_lines(divider: bool) -> None:
    gray, top_end, bottom_start = _two_line_image(divider)
    row = split_row(gray)
    assert top_end < row < bottom_start
    if divider:
        assert row != (top_end + bottom_start) // 2  # the paper, not the divider line


def test_split_row_of_a_very_short_crop_is_the_middle() -> None:
    assert split_row(np.full((5, 20), 200, np.uint8)) == 2


def test_composite_puts_the_top_line_left_and_the_bottom_line_right() -> None:
    gray = np.full((60, 60), 200, np.uint8)
    gray[:30] = 40  # a dark top half: whatever the split, the left half is dark
    strip = two_line_composite(gray, 32, 128)
    assert strip.shape == (32, 128) and strip.dtype == np.uint8
    gap = max(2, round(128 * GAP_FRACTION))
    half = (128 - gap) // 2
    assert strip[:, :half].mean() < 80
    assert strip[:, 128 - half :].min() == 200
    assert (strip[:, half : 128 - half] == 200).all()  # the gap is paper (75th percentile)


def test_composite_writes_into_the_given_buffer() -> None:
    gray, _, _ = _two_line_image()
    buffer = np.zeros((1, 32, 128, 1), np.uint8)
    view = buffer[0, :, :, 0]
    out = two_line_composite(gray, 32, 128, out=view)
    assert out is view
    np.testing.assert_array_equal(buffer[0, :, :, 0], two_line_composite(gray, 32, 128))


@pytest.mark.parametrize("shape", [(3, 40), (40,), (20, 1)])
def test_composite_refuses_a_crop_too_small_for_two_lines(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="two-line crop"):
        two_line_composite(np.zeros(shape, np.uint8), 32, 128)


def test_split_by_position_cuts_at_the_middle_time_step() -> None:
    tokens = f"{BA}2645498"
    steps = [1, 4, 7, 16, 19, 22, 25, 28]
    assert split_by_position(tokens, steps, 32) == (f"{BA}26", "45498")
    assert split_by_position("", [], 32) == ("", "")
    assert split_by_position("12", [15, 16], 32) == ("1", "2")  # step T / 2 is the bottom line


def test_split_by_position_refuses_mismatched_positions() -> None:
    with pytest.raises(ValueError, match="positions"):
        split_by_position("123", [1, 2], 32)


@pytest.mark.parametrize(
    ("top", "bottom", "raw"),
    [
        (f"{BA}26", "45498", f"45498{BA}26"),  # car: letter and region over the serial
        (f"26{BA}", "45498", f"45498{BA}26"),  # the letter right of the region
        (f"{SHEEN}3", "12", f"12{SHEEN}3"),
        ("8", "013353", "8|013353"),  # motorcycle: region over the serial
        (f"21{HEH}", "082851", "21|082851"),  # its sticker read as a letter: dropped
        (f"{WAW}9", "037513", "9|037513"),
        (f"{BA}", "037513", f"037513{BA}"),  # no region read: no motorcycle either
        ("WW", "123456", "123456WW"),  # letters over digits: serial first
        ("AB", "12C", "AB12C"),  # anything else: top then bottom
        ("MAB", "1234", "MAB1234"),  # a square European plate reads top then bottom
        ("", "123", "123"),
        ("12", "", "12"),
        ("", "", ""),
    ],
)
def test_logical_raw_puts_a_two_line_read_in_one_line_order(
    top: str, bottom: str, raw: str
) -> None:
    assert logical_raw(top, bottom) == raw


def test_label_tokens_are_what_the_strip_shows_left_to_right() -> None:
    assert label_tokens(f"{BA}26", "45498") == f"{BA}2645498"


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(100, 100, True), (180, 100, True), (259, 100, True), (260, 100, False), (220, 50, False)],
)
def test_maybe_two_line_is_about_the_crop_aspect(width: int, height: int, expected: bool) -> None:
    assert TWO_LINE_MAX_ASPECT == 2.6
    assert maybe_two_line(width, height) is expected


def test_maybe_two_line_of_an_empty_crop_is_false() -> None:
    assert not maybe_two_line(10, 0)
