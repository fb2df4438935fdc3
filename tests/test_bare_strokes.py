"""A bare stroke (``I`` or plain ``1``) that the recogniser skipped is put back from the strip
it read, and nothing else is: agent.reader.strokes and its use by the recogniser."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import ReaderConfig
from agent.reader.alternatives import doubts
from agent.reader.layout import GAP_FRACTION
from agent.reader.pipeline import ModelPlateReader, _strokes_more
from agent.reader.recogniser import Recogniser
from agent.reader.strokes import skipped_strokes, with_stroke

MODELS = Path(__file__).resolve().parent.parent / "models"
HEIGHT, WIDTH, STEPS = 32, 128, 64
PAPER, INK = 215, 25
TOP, BOTTOM = 8, 24  # the glyphs' rows


def _strip(
    glyphs: list[tuple[str, int]],
    *,
    bar_rows: tuple[int, int] = (TOP, BOTTOM),
    glyph_rows: tuple[int, int] = (TOP, BOTTOM),
    bar_width: int = 2,
) -> np.ndarray:
    """A model-input strip: ``("box", x)`` an 8 px wide glyph outline, ``("bar", x)`` a bare
    stroke ``bar_width`` px wide, both dark on light paper, softened as resizing softens a
    crop."""
    strip = np.full((HEIGHT, WIDTH), PAPER, np.uint8)
    for kind, x in glyphs:
        if kind == "box":
            cv2.rectangle(strip, (x, glyph_rows[0]), (x + 7, glyph_rows[1] - 1), INK, 2)
        else:
            strip[bar_rows[0] : bar_rows[1], x : x + bar_width] = INK
    return cv2.GaussianBlur(strip, (3, 3), 0.6)


def _step(x: float) -> int:
    return int(x * STEPS / WIDTH)


BOXES = [10, 26, 58, 74, 90]  # five glyphs; the bare stroke stands at 45, between 26 and 58


def test_a_stroke_that_no_emitted_character_explains_is_put_back() -> None:
    strip = _strip([*(("box", x) for x in BOXES), ("bar", 45)])
    steps = [_step(x + 4) for x in BOXES]
    (found,) = skipped_strokes(strip, "CNKYZ", steps, STEPS)
    assert found == _step(46)
    assert with_stroke("CNKYZ", steps, found) == ("CNIKYZ", [*steps[:2], found, *steps[2:]])


def test_a_stroke_four_pixels_wide_beside_short_glyphs_is_still_thin() -> None:
    """``EMOTION`` read ``EM0T0N``: glyphs 13 px tall, the resize spread the ``I`` over 4 px."""
    rows = (10, 23)
    strip = _strip(
        [*(("box", x) for x in BOXES), ("bar", 44)], bar_rows=rows, glyph_rows=rows, bar_width=4
    )
    steps = [_step(x + 4) for x in BOXES]
    assert skipped_strokes(strip, "EMTON", steps, STEPS) == (_step(46),)
    wider = _strip(
        [*(("box", x) for x in BOXES), ("bar", 43)], bar_rows=rows, glyph_rows=rows, bar_width=6
    )
    assert skipped_strokes(wider, "EMTON", steps, STEPS) == ()


def test_a_stroke_the_model_emitted_is_not_put_back_twice() -> None:
    strip = _strip([*(("box", x) for x in BOXES), ("bar", 45)])
    steps = sorted([_step(x + 4) for x in BOXES] + [_step(46)])
    assert skipped_strokes(strip, "BIAKY7", steps, STEPS) == ()


def test_a_strip_without_an_unexplained_stroke_gives_nothing() -> None:
    strip = _strip([("box", x) for x in BOXES])
    assert skipped_strokes(strip, "BAKY7", [_step(x + 4) for x in BOXES], STEPS) == ()


def test_a_stroke_ending_the_line_a_characters_gap_from_its_glyphs_is_put_back() -> None:
    """``BA215A`` for ``BA215AI``: after the line's last glyph, or before its first."""
    steps = [_step(x + 4) for x in BOXES]
    (after,) = skipped_strokes(
        _strip([*(("box", x) for x in BOXES), ("bar", 102)]), "BAKYZ", steps, STEPS
    )
    assert after == _step(103)
    assert with_stroke("BAKYZ", steps, after)[0] == "BAKYZI"
    (before,) = skipped_strokes(
        _strip([("bar", 4), *(("box", x) for x in BOXES)]), "BAKY7", steps, STEPS
    )
    assert before == _step(5)
    assert with_stroke("BAKY7", steps, before)[0] == "IBAKY7"


def test_a_bar_farther_out_than_a_characters_gap_is_the_plates_frame() -> None:
    strip = _strip([*(("box", x) for x in BOXES), ("bar", 112)])
    assert skipped_strokes(strip, "BAKY7", [_step(x + 4) for x in BOXES], STEPS) == ()


def test_the_second_leg_of_an_h_whose_bar_came_apart_is_no_stroke() -> None:
    """A night ``H`` ending the line: its bar is lighter than the ink threshold, so its legs
    are two blobs, but at Otsu's threshold no column of paper parts them."""
    strip = _strip([*(("box", x) for x in BOXES[:-1]), ("bar", 90), ("bar", 98)])
    strip[15:18, 92:98] = 100  # the bar: ink at Otsu's threshold, not at the stricter one
    steps = [_step(x + 4) for x in BOXES[:-1]] + [_step(90)]
    assert skipped_strokes(strip, "BAKYH", steps, STEPS) == ()
    strip[15:18, 92:98] = PAPER  # no bar: two bare strokes, the second put back
    assert skipped_strokes(strip, "BAKYI", steps, STEPS) == (_step(99),)


def test_a_stroke_against_its_neighbour_is_part_of_a_glyph() -> None:
    """A ``D`` whose stem came apart from its bowl: the stem stands 1 px from the rest."""
    strip = _strip([*(("box", x) for x in BOXES), ("bar", 55)])
    assert skipped_strokes(strip, "BAKY7", [_step(x + 4) for x in BOXES], STEPS) == ()


def test_a_bar_taller_than_the_glyphs_is_no_stroke() -> None:
    strip = _strip([*(("box", x) for x in BOXES), ("bar", 45)], bar_rows=(2, 30))
    assert skipped_strokes(strip, "BAKY7", [_step(x + 4) for x in BOXES], STEPS) == ()


def test_two_unexplained_bars_apart_are_too_many_to_trust() -> None:
    strip = _strip([("box", 10), ("box", 26), ("bar", 45), ("box", 58), ("bar", 77), ("box", 90)])
    steps = [_step(x + 4) for x in (10, 26, 58, 90)]
    assert skipped_strokes(strip, "BAK7", steps, STEPS) == ()


def test_two_bars_side_by_side_are_both_put_back() -> None:
    """``BT II AHV`` read ``BTAHV``: a pair a character's spacing apart, nothing between."""
    strip = _strip([("box", 10), ("box", 26), ("bar", 40), ("bar", 47), ("box", 58), ("box", 74)])
    steps = [_step(x + 4) for x in (10, 26, 58, 74)]
    pair = skipped_strokes(strip, "BTAH", steps, STEPS)
    assert pair == (_step(41), _step(48))
    tokens = "BTAH"
    for step in pair:
        tokens, steps = with_stroke(tokens, steps, step)
    assert tokens == "BTIIAH"


def test_two_bars_farther_apart_than_a_characters_spacing_are_no_pair() -> None:
    strip = _strip([("box", 10), ("box", 26), ("bar", 38), ("bar", 52), ("box", 58), ("box", 74)])
    steps = [_step(x + 4) for x in (10, 26, 58, 74)]
    assert skipped_strokes(strip, "BTAH", steps, STEPS) == ()
    closer = _strip([("box", 10), ("box", 26), ("bar", 40), ("bar", 50), ("box", 58), ("box", 74)])
    assert len(skipped_strokes(closer, "BTAH", steps, STEPS)) == 2


def test_a_moroccan_read_is_left_alone() -> None:
    """Its dividers are bars between characters."""
    strip = _strip([*(("box", x) for x in BOXES), ("bar", 45)])
    steps = [_step(x + 4) for x in BOXES]
    moroccan = [*steps[:2], steps[2] - 1, *steps[2:]]
    assert skipped_strokes(strip, "12\u0628345", moroccan, STEPS) == ()


def test_light_characters_on_dark_paper_are_left_alone() -> None:
    strip = 255 - _strip([*(("box", x) for x in BOXES), ("bar", 45)])
    assert skipped_strokes(strip, "BAKY7", [_step(x + 4) for x in BOXES], STEPS) == ()


def test_on_a_two_line_composite_a_bar_at_the_gap_is_a_side_edge() -> None:
    gap = max(2, round(WIDTH * GAP_FRACTION))
    right_half = WIDTH - (WIDTH - gap) // 2
    inside = [("box", 8), ("bar", 28), ("box", 40)]  # B I A in the top line
    bottom = [("box", right_half + 8), ("box", right_half + 30)]
    steps = [_step(x + 4) for x in (8, 40, right_half + 8, right_half + 30)]
    assert skipped_strokes(_strip(inside + bottom), "BAK7", steps, STEPS, two_line=True) == (
        _step(29),
    )
    edge = [("box", 8), ("box", 30), ("bar", right_half + 1), *bottom]
    steps = [_step(x + 4) for x in (8, 30, right_half + 8, right_half + 30)]
    assert skipped_strokes(_strip(edge), "BAK7", steps, STEPS, two_line=True) == ()


@pytest.mark.parametrize(
    ("tokens", "steps", "at", "expected"),
    [
        ("12345", [2, 8, 14, 20, 26], 11, "121345"),  # between digits: 1
        ("BAKY73", [2, 8, 14, 20, 26, 32], 5, "BIAKY73"),  # between letters: I
        ("TW3TED", [2, 8, 14, 20, 26, 32], 11, "TW13TED"),  # a British layout needs the digit
        ("W2ZI", [2, 8, 14, 20], 11, "W2IZI"),  # no known layout either way: I
    ],
)
def test_the_stroke_is_a_one_between_digits_and_an_i_between_letters(
    tokens: str, steps: list[int], at: int, expected: str
) -> None:
    assert with_stroke(tokens, steps, at)[0] == expected


def test_a_stroke_put_back_is_never_in_doubt() -> None:
    """The model gave it no probability, so there is no runner-up to swap it for."""
    charset = "0123456789ABI"
    probs = np.zeros((5, len(charset) + 1), np.float32)
    probs[:, 0] = 1.0
    for t, ch in ((0, "A"), (4, "B")):
        probs[t] = 0.0
        probs[t, charset.index(ch) + 1] = 1.0
    assert doubts(probs, "AIB", [0, 2, 4], charset) == []


def _one_line(text: str) -> np.ndarray:
    crop = np.full((40, 180, 3), 235, np.uint8)
    cv2.putText(crop, text, (8, 32), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 2, cv2.LINE_AA)
    return crop


@pytest.mark.parametrize("model", ["recogniser.tflite", "recogniser_2.tflite"])
def test_each_shipped_recogniser_reads_a_plain_i_it_skips(model: str) -> None:
    """Both shipped models skip this bare ``I`` (``KL4321``): the strip puts it back (as
    ``1``: ``KL14321`` is a German-like layout, and ``1`` / ``I`` are one character)."""
    crop = _one_line("KLI 4321")
    assert Recogniser(MODELS / model, bare_strokes=False).read_best(crop)[0] == "KL4321"
    assert Recogniser(MODELS / model).read_best(crop)[0] == "KL14321"
    assert Recogniser(MODELS / model).read_best(_one_line("AB1CD23"))[0] == "AB1CD23"


def test_the_reader_puts_strokes_back_unless_configured_off() -> None:
    crop = _one_line("KLI 4321")
    on = ModelPlateReader.from_config(ReaderConfig(), stills=True)
    off = ModelPlateReader.from_config(ReaderConfig(bare_strokes=False), stills=True)
    assert on.read_crop(crop)[0] == "KL-14321"
    assert off.read_crop(crop)[0] != "KL-14321"


@pytest.mark.parametrize(
    ("text", "other", "more"),
    [
        ("XIIUME", "XUME", True),  # two strokes side by side
        ("95417-A-40", "9547-A-40", True),  # separators not counted
        ("BA215AI", "BA215A", True),  # a stroke ending the line
        ("XUME", "XIIUME", False),  # fewer, not more
        ("XIKUME", "XUME", False),  # a character that is no stroke
        ("A1I1B", "AB", False),  # three strokes: more than the rule puts back
        ("B1A", "BA1", False),  # the others not in order
        ("XUME", "XUME", False),
    ],
)
def test_a_read_with_strokes_more_is_the_other_with_only_bare_strokes_added(
    text: str, other: str, more: bool
) -> None:
    assert _strokes_more(text, other) is more
