"""Coloured emblems (German seals, coats of arms, Swiss shields) painted over before a
second read: the shipped recogniser reads each as one more character."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import ReaderConfig
from agent.reader import pipeline
from agent.reader.colours import blanked_colours, coloured_mask, emblem_mask
from agent.reader.evaluate import same_plate
from agent.reader.pipeline import ModelPlateReader
from agent.reader.plate_text import canonicalize
from agent.synth.europe import _GROUPS, render_wide_plate
from agent.synth.plates import render_plate

MODELS = Path(__file__).resolve().parent.parent / "models"


def _plate_crop(country: str, seed: int, *, emblems: float = 1.0) -> tuple[np.ndarray, str]:
    """A rendered one-line plate of ``country`` with its emblems, in a dark margin, and
    its canonical text."""
    rng = np.random.default_rng(seed)
    groups = _GROUPS[country](rng)
    plate = render_wide_plate(
        country,
        groups,
        False,
        rng,
        50,
        emblems=emblems,
        emblem_rng=np.random.default_rng(seed + 100),
    )
    crop = cv2.copyMakeBorder(plate, 6, 6, 8, 8, cv2.BORDER_CONSTANT, value=(60, 60, 60))
    return np.ascontiguousarray(crop), canonicalize("".join(groups))[0]


def test_a_german_plates_seals_are_painted_in_its_papers_grey() -> None:
    crop, _ = _plate_crop("DE", 4)
    emblems = emblem_mask(crop)
    assert emblems is not None
    assert emblems.sum() > 20
    blanked = blanked_colours(crop)
    assert blanked is not None
    assert coloured_mask(blanked).sum() == 0  # grey all over
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    paper = np.percentile(gray, 80)
    seals = cv2.cvtColor(blanked, cv2.COLOR_BGR2GRAY)[emblems > 0]
    assert np.abs(seals.astype(int) - paper).max() <= 1


def test_a_plate_without_colour_and_a_coloured_plate_are_left_alone() -> None:
    plain = np.full((40, 160, 3), 225, np.uint8)
    cv2.putText(plain, "12345", (8, 32), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (20, 20, 20), 3)
    assert blanked_colours(plain) is None
    yellow = plain.copy()
    yellow[plain[..., 0] > 100] = (30, 200, 240)  # BGR yellow paper, black characters
    assert blanked_colours(yellow) is None


def test_specks_and_streaks_of_colour_are_no_emblem() -> None:
    """A reflection along a bumper or JPEG colour noise on ink: not blanked."""
    crop = np.full((60, 200, 3), 200, np.uint8)
    rng = np.random.default_rng(1)
    ys, xs = rng.integers(0, 60, 25), rng.integers(0, 200, 25)
    crop[ys, xs] = (0, 0, 230)  # red specks
    cv2.line(crop, (0, 30), (199, 50), (230, 80, 0), 1)  # a thin blue streak
    assert emblem_mask(crop) is None
    cv2.circle(crop, (60, 24), 9, (0, 0, 230), -1)  # a red seal in the line
    found = emblem_mask(crop)
    assert found is not None
    assert found[24, 60] == 1
    assert found[0, 0] == 0


@pytest.mark.parametrize(("country", "seed"), [("DE", 11), ("SK", 3), ("CH", 4)])
def test_emblems_read_as_a_character_are_read_away(country: str, seed: int) -> None:
    """The shipped models read a German seal as ``8``, Slovak arms and a Swiss shield as
    ``0`` (``D8MP740``, ``VB0121VW``, ``0TY560194``: in every view, so no pick between
    views takes it away); the read of the blanked crop is surer and kept."""
    crop, truth = _plate_crop(country, seed)
    config = ReaderConfig(models_dir=MODELS)
    as_is = ModelPlateReader.from_config(
        config.model_copy(update={"still_blank_colours": False}), stills=True
    )
    blanking = ModelPlateReader.from_config(config, stills=True)
    assert not same_plate(as_is.read_crop(crop)[0], truth)
    assert same_plate(blanking.read_crop(crop)[0], truth)


def test_a_read_of_a_known_layout_is_not_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Moroccan or French read prints no emblem: another view could only lose it."""
    calls: list[int] = []

    def spy(crop: np.ndarray) -> np.ndarray | None:
        calls.append(1)
        return blanked_colours(crop)

    monkeypatch.setattr(pipeline, "blanked_colours", spy)
    reader = ModelPlateReader(MODELS, wide_view=True, blank_colours=True)
    text, fmt, _conf = reader.read_crop(_french_crop())
    assert fmt == "FR", text
    assert calls == []
    german, _ = _plate_crop("DE", 11)
    reader.read_crop(german)
    assert calls


def _french_crop() -> np.ndarray:
    """A clean French SIV plate crop (blue bands: coloured, but a known layout)."""
    plate = render_plate("AB-123-CD", np.random.default_rng(3), height=50)
    crop = cv2.copyMakeBorder(plate, 6, 6, 8, 8, cv2.BORDER_CONSTANT, value=(60, 60, 60))
    return np.ascontiguousarray(crop)


def test_a_blanked_read_that_lost_characters_printed_in_colour_does_not_replace_the_plate() -> None:
    """Blanking takes away an emblem read as one character; a blanked read that lacks two
    or more of the plate read's characters, the rest kept, lost characters printed in
    colour (a New York plate's blue letters), however much surer it is."""
    surer = pipeline._surer_plate
    seal = ("KL8YA542", "UNKNOWN", 0.89, ())
    assert surer(("KLYA-542", "EU", 0.95, ()), seal)[0] == "KLYA-542"
    blue = ("W0NELLY", "UNKNOWN", 0.92, ())
    assert surer(("0ELLY", "UNKNOWN", 0.97, ()), blue) == blue
    assert surer(("XIIU", "UNKNOWN", 0.8424, ()), ("XIIUME", "UNKNOWN", 0.8423, ()))[0] == "XIIUME"
    # another text, not a part of the read: the surer plate read as ever
    assert surer(("AB-1234", "EU", 0.95, ()), ("A8Q1234XY", "UNKNOWN", 0.9, ()))[0] == "AB-1234"
    # a blanked read less sure, or no plate, never replaces
    assert surer(("KLYA-542", "EU", 0.5, ()), seal) == seal
    assert surer(("12", "UNKNOWN", 0.99, ()), seal) == seal
