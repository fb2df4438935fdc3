"""Glyph remixing (models/remix.py): re-lettered real plates keep labels and pixels in step."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))

import remix  # a training script module (models/ is no package)

BOX = 20  # each glyph box is BOX x BOX pixels


def _plate(chars: str, lines: list[int]) -> tuple[np.ndarray, list[remix.Glyph]]:
    """A plate whose glyph boxes each show a bright bar at a column that encodes the char."""
    image = np.full((2 * BOX + 10, len(chars) * BOX + 10, 3), 40, np.uint8)
    glyphs = []
    for i, (ch, line) in enumerate(zip(chars, lines, strict=True)):
        x, y = 5 + i * BOX, 5 + line * BOX
        image[y : y + BOX, x + _column(ch)] = 250
        glyphs.append(remix.Glyph(ch, line, (x, y, BOX, BOX)))
    return image, glyphs


def _column(ch: str) -> int:
    return 1 + (
        int(ch) if ch.isdigit() else 10 + "\u0623\u0628\u062f\u0647\u0648\u0637\u064a".index(ch)
    )


def _shown(image: np.ndarray, glyph: remix.Glyph) -> int:
    x, y, w, h = glyph.box
    return int(np.argmax(image[y : y + h, x : x + w, 0].mean(axis=0)))


@pytest.mark.parametrize("seed", range(8))
def test_a_remixed_plate_shows_the_characters_its_label_names(seed: int) -> None:
    chars, lines = "59017\u062340", [0] * 8
    image, glyphs = _plate(chars, lines)
    bank = remix.GlyphBank()
    bank.add(image, glyphs)
    every = "0123456789\u0623\u0628\u062f\u0647\u0648\u0637\u064a"
    bank.add(*_plate(every, [0] * len(every)))
    made = remix.remix(image, glyphs, bank, np.random.default_rng(seed))
    assert made is not None
    out, new_lines = made
    assert len(new_lines) == 1 and len(new_lines[0]) == len(chars)
    for glyph, ch in zip(glyphs, new_lines[0], strict=True):
        assert _shown(out, glyph) == _column(ch)
    assert new_lines[0][5] in "\u0623\u0628\u062f\u0647\u0648\u0637\u064a"


def test_digits_move_only_within_their_own_group_and_line() -> None:
    image, glyphs = _plate("\u062826" + "45498", [0, 0, 0, 1, 1, 1, 1, 1])
    made = remix.remix(image, glyphs, remix.GlyphBank(), np.random.default_rng(1), swap_share=0.0)
    assert made is not None
    _, (top, bottom) = made
    assert sorted(top[1:]) == sorted("26")
    assert sorted(bottom) == sorted("45498")


def test_a_glyph_missing_from_the_bank_gives_no_remix_rather_than_a_wrong_label() -> None:
    image, glyphs = _plate("12\u0623", [0, 0, 0])
    results = [
        remix.remix(image, glyphs, remix.GlyphBank(), np.random.default_rng(s)) for s in range(30)
    ]
    for made in results:
        if made is not None:  # only glyphs of this plate were used
            out, (line,) = made
            assert set(line) <= set("12\u0623")
            assert [_shown(out, g) for g in glyphs] == [_column(c) for c in line]
    assert any(made is None for made in results)


def test_a_plate_without_glyph_boxes_is_not_remixed() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    assert remix.remix(image, [], remix.GlyphBank(), np.random.default_rng(0)) is None
