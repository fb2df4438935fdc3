"""Field-like degradations and varied plate styles for training data (deterministic, seeded).

The first recogniser learnt our clean renderer rather than real plates (3 % on
real Moroccan crops). These helpers make synthetic data less flattering:

- :func:`render_any_plate`: every plate kind in varied styles (narrow
  "DIN-like" lettering by squeezing the glyphs, yellow and silver plates,
  screws, frames): Moroccan one-line and two-line car plates, motorcycles,
  the temporary ``NNNNNN WW``, W18, state (red ``M`` / المغرب) and
  diplomatic series, French SIV and FNI (black FNI too) and DE, ES, IT, BE,
  NL, PT, PL plates with the EU band; :func:`render_training_plate` is its
  one-line case;
- :func:`random_training_plate`: ``(text, two_line)`` in the training mix;
- :func:`field_plate_crop` (natural aspect), :func:`field_crop` (the
  recogniser's gray strip, two-line plates as
  ``agent.reader.layout.two_line_composite``) and :func:`clean_plate_crop`;
- :func:`field_degrade`: what a body or car camera does to a plate: rotation,
  perspective, motion blur and defocus, low light with noise, an IR night
  look, glare, dirt, partial occlusion at the edges, and JPEG or H.264-like
  (down-scaled, blocky) compression;
- :func:`cast_shadow`: the hard-edged shadow of a bumper or a car body across part of
  the plate (a candidate recipe's extra, not part of :func:`field_degrade`);
- :func:`random_training_text`: the older one-line MA/FR text mix.

Every function takes a ``numpy.random.Generator``; same seed, same pixels.
The sample clip does not use these (its pixels must not change).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage
from PIL import ImageDraw

from agent.frames import Image
from agent.reader.layout import two_line_composite
from agent.reader.plate_text import LATIN_TO_ARABIC, NL_LETTERS, canonicalize, eu_country
from agent.synth.plates import (
    BASE_H,
    BASE_W,
    MA_LETTERS,
    SIV_LETTERS,
    TEXT_FONTS,
    _band_image,
    _font,
    _paste_ink,
    _text_image,
    clean_degrade,
    jpeg_at,
    perspective_jitter,
    random_plate_text,
    render_plate,
)

Gray = npt.NDArray[np.uint8]

_PAPERS: tuple[tuple[tuple[int, int, int], float], ...] = (
    ((245, 245, 245), 0.78),  # white (RGB)
    ((238, 200, 40), 0.08),  # yellow (old French rear, some Moroccan)
    ((200, 200, 195), 0.08),  # silver / dirty white
    ((225, 215, 170), 0.06),  # aged cream
)


def random_training_text(rng: np.random.Generator) -> str:
    """A canonical plate text: 52 % MA, 6 % MA temporary, 34 % French SIV, 8 % French FNI."""
    r = rng.random()
    if r < 0.52:
        return random_plate_text(rng, "MA")
    if r < 0.58:
        return f"{int(rng.integers(100000, 1000000))}-WW"
    if r < 0.92:
        return random_plate_text(rng, "FR")
    return _fni_text(rng)


def _glyphs(
    text: str, rng: np.random.Generator, char_h: int, squeeze: float, spacing: float
) -> Gray:
    """Ink mask of ``text`` ``char_h`` px tall, glyphs narrowed by ``squeeze``."""
    font = _font(TEXT_FONTS[int(rng.integers(len(TEXT_FONTS)))], 96)
    mask = _text_image(text, font, spacing)
    h, w = mask.shape
    width = max(1, round(w * char_h / h * squeeze))
    return np.asarray(cv2.resize(mask, (width, char_h), interpolation=cv2.INTER_AREA), np.uint8)


def _fit_width(mask: Gray, max_width: int) -> Gray:
    if mask.shape[1] <= max_width:
        return mask
    return np.asarray(
        cv2.resize(mask, (max_width, mask.shape[0]), interpolation=cv2.INTER_AREA), np.uint8
    )


def _paper(rng: np.random.Generator) -> tuple[int, int, int]:
    weights = np.array([w for _, w in _PAPERS])
    base = _PAPERS[int(rng.choice(len(_PAPERS), p=weights / weights.sum()))][0]
    shade = rng.integers(-25, 11)
    return (
        int(np.clip(base[0] + shade, 0, 255)),
        int(np.clip(base[1] + shade, 0, 255)),
        int(np.clip(base[2] + shade, 0, 255)),
    )


def _screws(canvas: npt.NDArray[np.uint8], rng: np.random.Generator, ink: int) -> None:
    if rng.random() < 0.4:
        y = int(BASE_H * rng.uniform(0.15, 0.5))
        for x in (int(BASE_W * 0.2), int(BASE_W * 0.8)):
            cv2.circle(canvas, (x + int(rng.integers(-20, 21)), y), 5, (ink + 90,) * 3, -1)


def _moroccan_styled(text: str, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    paper = _paper(rng)
    ink = int(rng.integers(0, 60))
    canvas = np.empty((BASE_H, BASE_W, 3), np.uint8)
    canvas[...] = paper
    char_h = int(rng.integers(58, 82))
    squeeze = float(rng.uniform(0.6, 1.0))
    spacing = float(rng.uniform(0.0, 0.15))
    top = (BASE_H - char_h) // 2 + int(rng.integers(-4, 5))
    serial, second = text.split("-", maxsplit=1)[0], text.split("-")[1]
    if second == "WW":  # temporary series: digits then WW, no bars
        parts = [
            _glyphs(serial, rng, char_h, squeeze, spacing),
            _glyphs("WW", rng, char_h, 1.0, 0.05),
        ]
        parts = [_fit_width(p, 300 if i == 0 else 150) for i, p in enumerate(parts)]
        gap = int(rng.integers(25, 60))
        x = max((BASE_W - parts[0].shape[1] - parts[1].shape[1] - gap) // 2, 6)
        for part in parts:
            _paste_ink(canvas, part, x, top, ink)
            x += part.shape[1] + gap
    else:
        region = text.split("-")[2]
        letter = _glyphs(LATIN_TO_ARABIC[second], rng, int(char_h * rng.uniform(0.6, 0.9)), 1.0, 0)
        masks = [
            _fit_width(_glyphs(serial, rng, char_h, squeeze, spacing), 260),
            _fit_width(letter, 80),
            _fit_width(_glyphs(region, rng, char_h, squeeze, spacing), 100),
        ]
        bar_w = int(rng.integers(2, 8))
        gap = int(rng.integers(8, 30))
        total = sum(m.shape[1] for m in masks) + 4 * gap + 2 * bar_w
        x = max((BASE_W - total) // 2 + int(rng.integers(-12, 13)), 6)
        bar_top, bar_bottom = (
            int(BASE_H * rng.uniform(0.05, 0.2)),
            int(BASE_H * rng.uniform(0.8, 0.95)),
        )
        for i, mask in enumerate(masks):
            y = top if i != 1 else top + (char_h - mask.shape[0]) // 2 + int(rng.integers(-4, 5))
            _paste_ink(canvas, mask, min(x, BASE_W - mask.shape[1] - 1), y, ink)
            x += mask.shape[1] + gap
            if i < 2 and x + bar_w < BASE_W:
                canvas[bar_top:bar_bottom, x : x + bar_w] = ink
                x += bar_w + gap
    _screws(canvas, rng, ink)
    if rng.random() < 0.8:
        cv2.rectangle(canvas, (0, 0), (BASE_W - 1, BASE_H - 1), (ink,) * 3, int(rng.integers(1, 7)))
    return canvas


def _french_styled(text: str, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    black_fni = text[0].isdigit() and rng.random() < 0.4
    paper = (20, 20, 22) if black_fni else _paper(rng)
    ink = 225 if black_fni else int(rng.integers(0, 60))
    canvas = np.empty((BASE_H, BASE_W, 3), np.uint8)
    canvas[...] = paper
    left = right = 0
    if not black_fni:
        left = int(rng.integers(38, 52))
        canvas[:, :left] = _band_image(left, "F")
        if text[0].isalpha() and rng.random() < 0.85:
            right = int(rng.integers(38, 52))
            canvas[:, BASE_W - right :] = _band_image(right, None)
    char_h = int(rng.integers(60, 82))
    squeeze = float(rng.uniform(0.65, 1.0))
    glyph_text = text if rng.random() < 0.7 or text[0].isdigit() else text.replace("-", " ")
    if text[0].isdigit():
        glyph_text = text.replace("-", " ")
    mask = _glyphs(glyph_text, rng, char_h, squeeze, float(rng.uniform(0.0, 0.1)))
    room = BASE_W - left - right - 12
    mask = _fit_width(mask, room)
    x = left + (BASE_W - left - right - mask.shape[1]) // 2 + int(rng.integers(-5, 6))
    y = (BASE_H - char_h) // 2 + int(rng.integers(-4, 5))
    _paste_ink(canvas, mask, max(x, left + 2), y, ink)
    _screws(canvas, rng, 0 if black_fni else ink)
    cv2.rectangle(
        canvas,
        (0, 0),
        (BASE_W - 1, BASE_H - 1),
        (0 if black_fni else ink,) * 3,
        int(rng.integers(1, 5)),
    )
    return canvas


# ------------------------------------------------------------ more plate kinds

TWO_LINE_CAR_SIZE: Final = (330, 220)
"""Base ``(width, height)`` of a two-line Moroccan car plate (about 300 x 200 mm)."""
MOPED_SIZE: Final = (240, 200)
"""Base ``(width, height)`` of a Moroccan motorcycle plate (about 1.2:1)."""
EU_COUNTRIES: Final = ("DE", "ES", "IT", "BE", "NL", "PT", "PL")
"""The non-French EU countries drawn (see agent.reader.plate_text.EU_PATTERNS)."""

_BAND_CODES: Final = {"DE": "D", "ES": "E", "IT": "I", "BE": "B", "NL": "NL", "PT": "P", "PL": "PL"}
_RED: Final = (200, 25, 35)
_DIPLOMATIC_YELLOW: Final = (250, 200, 20)
_NL_YELLOW: Final = (245, 200, 20)
_STATE_WORD: Final = "\u0627\u0644\u0645\u063a\u0631\u0628"  # المغرب
_DIPLOMATIC_WORD: Final = "\u062f\u0628\u0644\u0648\u0645\u0627\u0633\u064a"  # دبلوماسي
_ES_LETTERS: Final = "BCDFGHJKLMNPRSTVWXYZ"
_IT_LETTERS: Final = "ABCDEFGHJKLMNPRSTVWXYZ"  # no I, O, Q, U
_NL_LETTERS: Final = NL_LETTERS.replace("M", "").replace("W", "")  # a passenger car's
_LATIN: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MOPED = re.compile(r"^\d{1,2}-\d{6}$")
_SIV_SHAPE = re.compile(r"^[A-Z]{2}-\d{3}-[A-Z]{2}$")
_IT_STYLE_SHARE: Final = 0.06
"""Share of SIV-shaped texts drawn as Italian plates (Italian plates are valid SIV texts)."""

_MIX: Final = (
    ("ma", 0.40),
    ("ma2", 0.07),
    ("moped", 0.04),
    ("ww", 0.05),
    ("w18", 0.02),
    ("state", 0.02),
    ("cd", 0.02),
    ("siv", 0.22),
    ("fni", 0.06),
    ("eu", 0.10),
)
"""Kinds drawn by :func:`random_training_plate` and their shares."""


def _letters(rng: np.random.Generator, alphabet: str, n: int) -> str:
    return "".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), size=n))


def _number(rng: np.random.Generator, n_digits: int) -> str:
    return str(int(rng.integers(10 ** (n_digits - 1), 10**n_digits)))


def _fni_text(rng: np.random.Generator) -> str:
    """An old French FNI text; never one that reads as Moroccan (``123-SH-45``)."""
    while True:
        number = int(rng.integers(1, 10000))
        letters = _letters(rng, SIV_LETTERS, int(rng.integers(2, 4)))
        dept = int(rng.integers(1, 96))
        dept = 21 if dept == 20 else dept
        text = f"{number}-{letters}-{dept:02d}"
        if canonicalize(text)[1] == "FR":
            return text


def _nl_compact(rng: np.random.Generator) -> str:
    side, nl = int(rng.integers(4)), _NL_LETTERS
    if side == 0:
        return f"{_letters(rng, nl, 2)}{_number(rng, 3)}{_letters(rng, nl, 1)}"
    if side == 1:
        return f"{int(rng.integers(1, 10))}{_letters(rng, nl, 3)}{_number(rng, 2)}"
    if side == 2:
        return f"{_letters(rng, nl, 1)}{_number(rng, 3)}{_letters(rng, nl, 2)}"
    return f"{_number(rng, 2)}{_letters(rng, nl, 3)}{int(rng.integers(1, 10))}"


def _pt_compact(rng: np.random.Generator) -> str:
    if rng.random() < 0.6:
        return (
            f"{_letters(rng, _LATIN, 2)}{int(rng.integers(0, 100)):02d}{_letters(rng, _LATIN, 2)}"
        )
    return f"{int(rng.integers(0, 10000)):04d}{_letters(rng, _LATIN, 2)}"


def _de_compact(rng: np.random.Generator) -> str:
    suffix = "E" if rng.random() < 0.04 else ("H" if rng.random() < 0.04 else "")
    letters = _letters(rng, _LATIN, int(rng.integers(2, 6)))
    return f"{letters}{_number(rng, int(rng.integers(1, 5)))}{suffix}"


_EU_COMPACT: Final[dict[str, Callable[[np.random.Generator], str]]] = {
    "ES": lambda rng: f"{int(rng.integers(0, 10000)):04d}{_letters(rng, _ES_LETTERS, 3)}",
    "DE": _de_compact,
    "IT": lambda rng: (
        f"{_letters(rng, _IT_LETTERS, 2)}{int(rng.integers(0, 1000)):03d}"
        f"{_letters(rng, _IT_LETTERS, 2)}"
    ),
    "BE": lambda rng: (
        f"{int(rng.integers(1, 3))}{_letters(rng, _LATIN, 3)}{int(rng.integers(0, 1000)):03d}"
    ),
    "NL": _nl_compact,
    "PT": _pt_compact,
    "PL": lambda rng: f"{_letters(rng, _LATIN, 2)}{_number(rng, 5)}",
}


def random_eu_text(rng: np.random.Generator, country: str) -> str:
    """A canonical text of an EU plate of ``country`` (one of :data:`EU_COUNTRIES`).

    The text is format ``EU`` and its shape is the country's own, except for Italy:
    Italian plates are valid French SIV texts, so an ``IT`` text is usually ``FR``.
    """
    if country not in _EU_COMPACT:
        raise ValueError(f"no EU plates of {country!r}")
    for _ in range(100):
        compact = _EU_COMPACT[country](rng)
        text, fmt = canonicalize(compact)
        if fmt != "UNKNOWN" and (
            country == "IT" or (fmt == "EU" and eu_country(compact) == country)
        ):
            return text
    raise RuntimeError(f"no valid {country} plate drawn")  # pragma: no cover


def _moped_text(rng: np.random.Generator) -> str:
    serial = int(rng.integers(1, 100000 if rng.random() < 0.7 else 1000000))
    return f"{int(rng.integers(1, 90))}-{serial:06d}"


def _diplomatic_text(rng: np.random.Generator) -> str:
    prefix = "CMD" if rng.random() < 0.15 else "CD"
    return f"{prefix}-{int(rng.integers(1, 1000))}-{int(rng.integers(1, 100)):02d}"


def _any_eu_text(rng: np.random.Generator) -> str:
    return random_eu_text(rng, EU_COUNTRIES[int(rng.integers(len(EU_COUNTRIES)))])


_KIND_TEXT: Final[dict[str, Callable[[np.random.Generator], str]]] = {
    "ma": lambda rng: random_plate_text(rng, "MA"),
    "ma2": lambda rng: random_plate_text(rng, "MA"),
    "moped": _moped_text,
    "ww": lambda rng: f"{int(rng.integers(100000, 1000000))}-WW",
    "w18": lambda rng: f"W18-{_number(rng, int(rng.integers(1, 7)))}",
    "state": lambda rng: f"{int(rng.integers(1, 1000000)):06d}-M",
    "cd": _diplomatic_text,
    "siv": lambda rng: random_plate_text(rng, "FR"),
    "fni": _fni_text,
    "eu": _any_eu_text,
}


def _kind_text(kind: str, rng: np.random.Generator) -> tuple[str, bool]:
    return _KIND_TEXT[kind](rng), kind in ("ma2", "moped")


def random_training_plate(rng: np.random.Generator) -> tuple[str, bool]:
    """``(canonical text, two_line)`` of a random plate, in the training mix.

    MA one-line 40 %, MA two-line car 7 %, MA motorcycle 4 % (always two-line),
    MA temporary ``WW`` 5 %, W18 2 %, state ``M`` 2 %, diplomatic 2 %, French SIV
    22 %, French FNI 6 %, other EU 10 % (DE, ES, IT, BE, NL, PT, PL evenly; Italian
    texts are French SIV-shaped and come out as format FR).
    """
    r, acc = rng.random(), 0.0
    for kind, share in _MIX:
        acc += share
        if r < acc:
            return _kind_text(kind, rng)
    return _kind_text(_MIX[-1][0], rng)


def _word_mask(text: str, font_name: str) -> Gray:
    """Tight ink mask of a whole string (Arabic shaped and right-to-left), cached."""
    return _word_mask_cached(text, font_name)


@functools.lru_cache(maxsize=256)
def _word_mask_cached(text: str, font_name: str) -> Gray:
    font = _font(font_name, 96)
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    canvas = PILImage.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(canvas).text((4 - left, 4 - top), text, font=font, fill=255)
    mask = np.asarray(canvas)
    ys, xs = np.nonzero(mask.max(axis=1))[0], np.nonzero(mask.max(axis=0))[0]
    out = np.ascontiguousarray(mask[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1], dtype=np.uint8)
    out.flags.writeable = False
    return out


def _sized(mask: Gray, height: int, max_width: int, squeeze: float = 1.0) -> Gray:
    """``mask`` scaled to ``height`` px (narrowed by ``squeeze``), at most ``max_width`` wide."""
    h, w = mask.shape
    width = min(max(1, round(w * height / h * squeeze)), max(1, max_width))
    return np.asarray(
        cv2.resize(mask, (width, max(1, height)), interpolation=cv2.INTER_AREA), np.uint8
    )


def _row(
    text: str, font_name: str, height: int, max_width: int, *, squeeze: float, spacing: float
) -> Gray:
    return _sized(_text_image(text, _font(font_name, 96), spacing), height, max_width, squeeze)


def _paste_rgb(
    canvas: npt.NDArray[np.uint8], mask: Gray, x: int, y: int, colour: tuple[int, int, int]
) -> None:
    """Alpha-blend ``mask`` in ``colour`` onto ``canvas`` at ``(x, y)``, clipped to the canvas."""
    x, y = max(0, x), max(0, y)
    region = canvas[y : y + mask.shape[0], x : x + mask.shape[1]]
    alpha = mask[: region.shape[0], : region.shape[1], None].astype(np.float32) / 255.0
    ink = np.array(colour, np.float32)
    region[...] = (region * (1.0 - alpha) + ink * alpha).astype(np.uint8)


def _style(rng: np.random.Generator) -> tuple[str, float, float]:
    """A font, a glyph squeeze and a character spacing for one plate."""
    font = TEXT_FONTS[int(rng.integers(len(TEXT_FONTS)))]
    return font, float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.0, 0.14))


def _finish(canvas: npt.NDArray[np.uint8], rng: np.random.Generator, ink: int) -> None:
    h, w = canvas.shape[:2]
    if rng.random() < 0.4:  # mounting screws
        y = int(h * rng.uniform(0.05, 0.15))
        for x in (int(w * 0.15), int(w * 0.85)):
            cv2.circle(canvas, (x, y), max(2, w // 80), (ink + 90,) * 3, -1)
    if rng.random() < 0.8:
        cv2.rectangle(canvas, (0, 0), (w - 1, h - 1), (ink,) * 3, int(rng.integers(1, 6)))


def _two_line_car(text: str, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Letter | region on top, a divider, the serial below in larger digits."""
    serial, letter, region = text.split("-")
    width, height = TWO_LINE_CAR_SIZE
    ink = int(rng.integers(0, 60))
    colour = (ink, ink, ink)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[...] = _paper(rng)
    font, squeeze, spacing = _style(rng)
    divider = int(height * rng.uniform(0.43, 0.5))
    top_h = int(divider * rng.uniform(0.55, 0.72))
    mid = width // 2 + int(rng.integers(-15, 16))
    bar_w = int(rng.integers(3, 8))
    canvas[int(divider * rng.uniform(0.04, 0.15)) : divider, mid : mid + bar_w] = colour
    line_w = int(rng.integers(3, 8))
    canvas[divider : divider + line_w] = colour
    letter_font = TEXT_FONTS[int(rng.integers(len(TEXT_FONTS)))]
    letter_m = _sized(
        _word_mask(LATIN_TO_ARABIC[letter], letter_font),
        int(top_h * rng.uniform(0.65, 0.95)),
        mid - 24,
    )
    region_m = _row(region, font, top_h, width - mid - bar_w - 24, squeeze=squeeze, spacing=spacing)
    y_top = (divider - top_h) // 2 + int(rng.integers(-4, 5))
    y_letter = y_top + (top_h - letter_m.shape[0]) // 2 + int(rng.integers(-5, 6))
    _paste_rgb(canvas, letter_m, (mid - letter_m.shape[1]) // 2, y_letter, colour)
    right_x = mid + bar_w + (width - mid - bar_w - region_m.shape[1]) // 2
    _paste_rgb(canvas, region_m, right_x, y_top, colour)
    bottom_h = int((height - divider - line_w) * rng.uniform(0.62, 0.8))
    serial_m = _row(serial, font, bottom_h, width - 24, squeeze=squeeze, spacing=spacing)
    y_bottom = (
        divider + line_w + (height - divider - line_w - bottom_h) // 2 + int(rng.integers(-3, 4))
    )
    x = (width - serial_m.shape[1]) // 2 + int(rng.integers(-8, 9))
    _paste_rgb(canvas, serial_m, x, y_bottom, colour)
    _finish(canvas, rng, ink)
    return canvas


def _moped(text: str, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """The region number on top, a divider, the 6-digit serial below."""
    region, serial = text.split("-")
    width, height = MOPED_SIZE
    height = round(height * rng.uniform(0.95, 1.3))  # real ones run from 6:5 to nearly square
    ink = int(rng.integers(0, 60))
    colour = (ink, ink, ink)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[...] = _paper(rng)
    font, squeeze, spacing = _style(rng)
    divider = int(height * rng.uniform(0.45, 0.52))
    line_w = int(rng.integers(2, 6))
    inset = int(width * rng.uniform(0.0, 0.12))
    canvas[divider : divider + line_w, inset : width - inset] = colour
    top_h = int(divider * rng.uniform(0.3, 0.65))  # real ones: a small region, much paper
    region_m = _row(region, font, top_h, width // 2, squeeze=squeeze, spacing=spacing)
    y_top = (divider - top_h) // 2 + int(rng.integers(-4, 5))
    x_region = (width - region_m.shape[1]) // 2 + int(rng.integers(-6, 7))
    _paste_rgb(canvas, region_m, x_region, y_top, colour)
    _moped_marks(canvas, rng, divider, (x_region, y_top, region_m.shape[1], top_h))
    bottom_h = int((height - divider - line_w) * rng.uniform(0.5, 0.7))
    serial_m = _row(serial, font, bottom_h, width - 20, squeeze=squeeze, spacing=spacing)
    y_bottom = (
        divider + line_w + (height - divider - line_w - bottom_h) // 2 + int(rng.integers(-3, 4))
    )
    _paste_rgb(canvas, serial_m, (width - serial_m.shape[1]) // 2, y_bottom, colour)
    _finish(canvas, rng, ink)
    return canvas


def _moped_marks(
    canvas: npt.NDArray[np.uint8],
    rng: np.random.Generator,
    divider: int,
    region_box: tuple[int, int, int, int],
) -> None:
    """What real motorcycle plates show on top besides the region: mounting holes
    on both sides, and on some a small emblem (a country-map sticker) by the number."""
    width = canvas.shape[1]
    if rng.random() < 0.5:
        y, r = int(divider * rng.uniform(0.3, 0.6)), max(3, width // 30)
        for x in (int(width * rng.uniform(0.06, 0.14)), int(width * rng.uniform(0.86, 0.94))):
            cv2.circle(canvas, (x, y), r, (int(rng.integers(20, 120)),) * 3, -1)
    if rng.random() < 0.3:
        x, y, w, h = region_box
        size = max(6, int(h * rng.uniform(0.6, 1.0)))
        ex = x + w + int(rng.integers(2, 12)) if rng.random() < 0.5 else x - size - 8
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        cv2.ellipse(
            canvas,
            (ex + size // 2, y + h // 2),
            (size // 2, int(size * rng.uniform(0.3, 0.55))),
            float(rng.uniform(0, 180)),
            0,
            360,
            colour,
            -1,
        )


def _one_line_parts(
    parts: list[tuple[Gray, tuple[int, int, int]]],
    canvas: npt.NDArray[np.uint8],
    rng: np.random.Generator,
    *,
    gap: int,
    x0: int,
    x1: int,
) -> None:
    """Paste masks (each with its colour) side by side, centred between ``x0`` and ``x1``."""
    room = x1 - x0 - 8
    total = sum(m.shape[1] for m, _ in parts) + gap * (len(parts) - 1)
    scale = min(1.0, room / max(total, 1))
    x = x0 + (x1 - x0 - round(total * scale)) // 2 + int(rng.integers(-4, 5))
    x = max(x, x0 + 2)
    for part, colour in parts:
        mask = part if scale >= 1.0 else _sized(part, part.shape[0], round(part.shape[1] * scale))
        y = (BASE_H - mask.shape[0]) // 2 + int(rng.integers(-3, 4))
        _paste_rgb(canvas, mask, x, y, colour)
        x += mask.shape[1] + round(gap * scale)


def _ma_special(text: str, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """W18 (``W18 123456``), state (``123456`` then a red M or المغرب) and diplomatic plates."""
    diplomatic = text.startswith(("CD", "CMD"))
    ink = int(rng.integers(0, 50))
    black = (ink, ink, ink)
    canvas = np.empty((BASE_H, BASE_W, 3), np.uint8)
    canvas[...] = _DIPLOMATIC_YELLOW if diplomatic else _paper(rng)
    if diplomatic:
        canvas[...] = np.clip(canvas.astype(np.int16) + int(rng.integers(-30, 6)), 0, 255)
    font, squeeze, spacing = _style(rng)
    char_h = int(rng.integers(58, 80))
    if text.startswith("W18"):
        serial = text.split("-")[1]
        parts = [(_row("W18", font, char_h, 200, squeeze=squeeze, spacing=spacing), black)]
        parts.append((_row(serial, font, char_h, 300, squeeze=squeeze, spacing=spacing), black))
        if rng.random() < 0.5:  # a bar between, as on the other Moroccan plates
            bar = np.zeros((int(BASE_H * 0.75), int(rng.integers(3, 7))), np.uint8) + 255
            parts.insert(1, (bar, black))
        _one_line_parts(parts, canvas, rng, gap=int(rng.integers(14, 40)), x0=0, x1=BASE_W)
    elif text.endswith("-M"):
        digits = _row(text[:6], font, char_h, 340, squeeze=squeeze, spacing=spacing)
        if rng.random() < 0.5:
            mark = _row("M", font, char_h, 90, squeeze=1.0, spacing=0.0)
        else:
            word_font = TEXT_FONTS[int(rng.integers(len(TEXT_FONTS)))]
            mark = _sized(_word_mask(_STATE_WORD, word_font), int(char_h * 0.6), 170)
        _one_line_parts(
            [(digits, black), (mark, _RED)],
            canvas,
            rng,
            gap=int(rng.integers(18, 45)),
            x0=0,
            x1=BASE_W,
        )
    else:
        kind, serial, embassy = text.split("-")
        block = int(rng.integers(88, 110))
        cd = _row(
            kind, "DejaVuSans-Bold.ttf", int(BASE_H * 0.42), block - 10, squeeze=1.0, spacing=0.04
        )
        _paste_rgb(canvas, cd, 8 + (block - cd.shape[1]) // 2, int(BASE_H * 0.1), black)
        maroc = _row(
            "MAROC", "DejaVuSans-Bold.ttf", int(BASE_H * 0.14), block - 8, squeeze=1.0, spacing=0.05
        )
        _paste_rgb(canvas, maroc, 8 + (block - maroc.shape[1]) // 2, int(BASE_H * 0.66), black)
        arabic = _sized(
            _word_mask(_DIPLOMATIC_WORD, "DejaVuSans-Bold.ttf"), int(BASE_H * 0.26), block
        )
        _paste_rgb(
            canvas, arabic, BASE_W - 8 - (block + arabic.shape[1]) // 2, int(BASE_H * 0.1), black
        )
        word = _sized(_word_mask(_STATE_WORD, "DejaVuSans-Bold.ttf"), int(BASE_H * 0.26), block)
        _paste_rgb(
            canvas, word, BASE_W - 8 - (block + word.shape[1]) // 2, int(BASE_H * 0.56), black
        )
        middle = _row(
            f"{serial}-{embassy}",
            font,
            char_h,
            BASE_W - 2 * block - 40,
            squeeze=squeeze,
            spacing=spacing,
        )
        _one_line_parts(
            [(middle, black)], canvas, rng, gap=0, x0=block + 12, x1=BASE_W - block - 12
        )
    _finish(canvas, rng, ink)
    return canvas


def _eu_printed(text: str, country: str) -> str:
    runs = text.split("-")
    if country in ("ES", "IT", "PL"):
        return " ".join(runs)
    if country == "PT" and len(runs) == 2 and runs[0].isdigit():  # old 12-34-AB
        return f"{runs[0][:2]}-{runs[0][2:]}-{runs[1]}"
    return text


def _eu_styled(text: str, country: str, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """An EU plate: blue band with the country code, the text as printed in the country."""
    ink = int(rng.integers(0, 50))
    colour = _RED if country == "BE" else (ink, ink, ink)
    canvas = np.empty((BASE_H, BASE_W, 3), np.uint8)
    canvas[...] = _NL_YELLOW if country == "NL" else _paper(rng)
    if country == "NL":
        canvas[...] = np.clip(canvas.astype(np.int16) + int(rng.integers(-30, 6)), 0, 255)
    left = int(rng.integers(38, 52))
    canvas[:, :left] = _band_image(left, _BAND_CODES[country])
    right = BASE_W
    if country == "IT":
        width = int(rng.integers(38, 52))
        canvas[:, BASE_W - width :] = _band_image(width, None)
        right = BASE_W - width
    font, squeeze, spacing = _style(rng)
    char_h = int(rng.integers(60, 82))
    if country == "DE":
        runs = text.split("-")
        letters = runs[0]
        lo, hi = max(1, len(letters) - 2), min(3, len(letters) - 1)
        k = int(rng.integers(lo, hi + 1))
        rest = " ".join([letters[k:], *runs[1:]])
        city = _row(letters[:k], font, char_h, 200, squeeze=squeeze, spacing=spacing)
        tail = _row(rest, font, char_h, 380, squeeze=squeeze, spacing=spacing)
        sticker_w = int(char_h * 0.55)
        gap = int(rng.integers(6, 14))
        space = np.zeros((char_h, sticker_w + 2 * gap), np.uint8)
        _one_line_parts(
            [(city, colour), (space, colour), (tail, colour)], canvas, rng, gap=0, x0=left, x1=right
        )
        total = city.shape[1] + space.shape[1] + tail.shape[1]
        scale = min(1.0, (right - left - 8) / total)
        x_centre = (
            left
            + (right - left - round(total * scale)) // 2
            + round((city.shape[1] + space.shape[1] / 2) * scale)
        )
        radius = max(3, round(sticker_w * scale / 2))
        for k_y, fill in ((0.3, (60, 140, 60)), (0.7, (200, 200, 200))):
            cv2.circle(canvas, (x_centre, int(BASE_H * k_y)), radius, fill, -1)
            cv2.circle(canvas, (x_centre, int(BASE_H * k_y)), radius, (90, 90, 90), 1)
    else:
        mask = _row(
            _eu_printed(text, country),
            font,
            char_h,
            right - left - 12,
            squeeze=squeeze,
            spacing=spacing,
        )
        _one_line_parts([(mask, colour)], canvas, rng, gap=0, x0=left, x1=right)
    _finish(canvas, rng, ink)
    return canvas


_MA_KINDS: Final[tuple[tuple[str, Callable[[str], bool]], ...]] = (
    ("moped", lambda t: _MOPED.match(t) is not None),
    ("ww", lambda t: t.endswith("-WW")),
    ("w18", lambda t: t.startswith("W18")),
    ("state", lambda t: t.endswith("-M")),
    ("cd", lambda t: t.startswith(("CD", "CMD"))),
)


def plate_kind(text: str, *, two_line: bool = False) -> str:
    """What :func:`render_any_plate` draws for canonical ``text``: ``"ma"``, ``"ma2"``
    (two-line car), ``"moped"``, ``"ww"``, ``"w18"``, ``"state"``, ``"cd"``, ``"fr"``
    or ``"eu-XX"`` (``XX`` the country). Raises ``ValueError`` for other texts."""
    canonical, fmt = canonicalize(text)
    if canonical != text or fmt not in ("MA", "FR", "EU"):
        raise ValueError(f"can only render canonical MA, FR or EU plates, not {text!r}")
    if fmt == "FR":
        return "fr"
    if fmt == "EU":
        return f"eu-{eu_country(text.replace('-', ''))}"
    for kind, matches in _MA_KINDS:
        if matches(text):
            return kind
    return "ma2" if two_line else "ma"


def render_any_plate(
    text: str, rng: np.random.Generator, height: int = 110, *, two_line: bool = False
) -> Image:
    """Draw canonical ``text`` of any kind in a random style, BGR, ``height`` px tall.

    ``two_line`` draws a Moroccan car plate on two lines; motorcycle plates are
    always two-line, other kinds ignore it. The width keeps the kind's aspect
    (one-line ~4.7:1, two-line car 1.5:1, motorcycle 1.2:1) with +-10 % jitter.
    SIV-shaped French texts are drawn as Italian plates 6 % of the time. Raises
    ``ValueError`` for a text that is not a canonical MA, FR or EU plate.
    """
    kind = plate_kind(text, two_line=two_line)
    if kind == "fr" and _SIV_SHAPE.match(text) and rng.random() < _IT_STYLE_SHARE:
        kind = "eu-IT"
    if kind in ("ma", "ww"):
        rgb = _moroccan_styled(text, rng)
    elif kind == "ma2":
        rgb = _two_line_car(text, rng)
    elif kind == "moped":
        rgb = _moped(text, rng)
    elif kind in ("w18", "state", "cd"):
        rgb = _ma_special(text, rng)
    elif kind == "fr":
        rgb = _french_styled(text, rng)
    else:
        rgb = _eu_styled(text, kind[3:], rng)
    base_h, base_w = rgb.shape[:2]
    width = max(2, round(base_w * height / base_h * rng.uniform(0.9, 1.1)))
    interp = cv2.INTER_AREA if height < base_h else cv2.INTER_LINEAR
    bgr = cv2.cvtColor(cv2.resize(rgb, (width, height), interpolation=interp), cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(bgr)


def render_training_plate(text: str, rng: np.random.Generator, height: int = 110) -> Image:
    """One-line :func:`render_any_plate` (motorcycle plates still come out on two lines)."""
    return render_any_plate(text, rng, height)


def _is_two_line(text: str, two_line: bool) -> bool:
    return two_line or _MOPED.match(text) is not None


# ------------------------------------------------------------------ degradations


def rotate_warp(
    image: Image, rng: np.random.Generator, max_deg: float = 8.0, amount: float = 0.05
) -> Image:
    """Small rotation plus perspective (corner jitter), same size, edges replicated."""
    h, w = image.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    angle = np.deg2rad(rng.uniform(-max_deg, max_deg))
    centre = np.array([w / 2, h / 2], np.float32)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    dst = (src - centre) @ rot.T + centre
    dst += rng.uniform(-amount, amount, size=(4, 2)).astype(np.float32) * [w, h]
    matrix = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    out = cv2.warpPerspective(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(out)


def motion_or_defocus(image: Image, rng: np.random.Generator) -> Image:
    """Motion blur along a random direction, or a defocus (disc) blur."""
    if rng.random() < 0.5:
        length = int(rng.integers(3, 7))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D(
            (length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(-30, 30)), 1.0
        )
        kernel = np.asarray(cv2.warpAffine(kernel, rot, (length, length)), np.float32)
        kernel /= max(float(kernel.sum()), 1e-6)
    else:
        radius = int(rng.integers(1, 3))
        kernel = np.zeros((2 * radius + 1, 2 * radius + 1), np.float32)
        cv2.circle(kernel, (radius, radius), radius, 1.0, -1)
        kernel /= float(kernel.sum())
    return np.ascontiguousarray(cv2.filter2D(image, -1, kernel))


def low_light(image: Image, rng: np.random.Generator) -> Image:
    """Dark, low-contrast frame with strong sensor noise (dusk, underexposure)."""
    gain = float(rng.uniform(0.25, 0.55))
    dark = image.astype(np.float32) * gain + float(rng.uniform(0, 15))
    dark += rng.normal(0.0, rng.uniform(2.0, 8.0), size=image.shape).astype(np.float32)
    out: Image = np.clip(dark, 0, 255).astype(np.uint8)
    return out


def ir_night(image: Image, rng: np.random.Generator) -> Image:
    """Infrared night look: monochrome, retro-reflective plate blown out, surroundings dark."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gamma = float(rng.uniform(1.5, 2.4))
    bright = np.asarray(255.0 * (gray / 255.0) ** gamma * rng.uniform(1.2, 1.8), np.float32)
    bright += np.asarray(rng.normal(0.0, rng.uniform(3.0, 10.0), size=gray.shape), np.float32)
    mono = np.clip(bright, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(cv2.cvtColor(mono, cv2.COLOR_GRAY2BGR))


def glare(image: Image, rng: np.random.Generator) -> Image:
    """A bright elliptical highlight (sun or headlight on the plate)."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    sx, sy = rng.uniform(0.1, 0.4) * w, rng.uniform(0.2, 0.8) * h
    blob = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2)) * rng.uniform(60, 150)
    out: Image = np.clip(image.astype(np.float32) + blob[:, :, None], 0, 255).astype(np.uint8)
    return out


def dirt(image: Image, rng: np.random.Generator) -> Image:
    """Semi-transparent brown-grey smudges and specks."""
    out = image.astype(np.float32)
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(2, 12))):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(1, max(2, w // 8))), int(rng.integers(1, max(2, h // 4))))
        cv2.ellipse(
            mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.2, 0.6)), -1
        )
    mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), max(1.0, h / 20)), np.float32)
    colour = np.array([50, 60, 70], np.float32) * rng.uniform(0.5, 1.5)
    out = out * (1 - mask[:, :, None]) + colour * mask[:, :, None]
    result: Image = np.clip(out, 0, 255).astype(np.uint8)
    return result


def edge_occlusion(image: Image, rng: np.random.Generator) -> Image:
    """Something (a tow bar, a bumper, a frame) hides a thin strip along one edge."""
    out = image.copy()
    h, w = image.shape[:2]
    colour = tuple(int(c) for c in rng.integers(0, 120, size=3))
    side = int(rng.integers(4))
    if side == 0:
        out[: max(1, int(h * rng.uniform(0.05, 0.18)))] = colour
    elif side == 1:
        out[h - max(1, int(h * rng.uniform(0.05, 0.18))) :] = colour
    elif side == 2:
        out[:, : max(1, int(w * rng.uniform(0.02, 0.06)))] = colour
    else:
        out[:, w - max(1, int(w * rng.uniform(0.02, 0.06))) :] = colour
    return out


def codec(image: Image, rng: np.random.Generator) -> Image:
    """JPEG, or H.264-like: chroma loss, down-scaled, blocky re-encode at low quality."""
    h, w = image.shape[:2]
    src = image
    if rng.random() < 0.5:
        f = float(rng.uniform(0.4, 0.8))
        small = cv2.resize(
            image, (max(2, round(w * f)), max(2, round(h * f))), interpolation=cv2.INTER_AREA
        )
        src = np.ascontiguousarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
        quality = int(rng.integers(10, 50))
    else:
        quality = int(rng.integers(20, 95))
    out = jpeg_at(src, quality)
    return image if out is src else out


SHADOW_DEPTH: Final = (0.3, 0.7)
"""A cast shadow keeps this share of the light (a range drawn from) where it falls."""
SHADOW_EDGE_PX: Final = (0.3, 2.5)
"""Softness of its edge: the width, in pixels of the strip, of the light's ramp."""
SHADOW_MAX_TILT: Final = 70.0
"""Its edge leans up to this many degrees from the vertical."""


def cast_shadow(image: Image, rng: np.random.Generator) -> Image:
    """``image`` (grey or BGR) with the shadow of something in the sun across one side of it.

    Why: on sunny streets the shadow of a bumper, a tow hitch or the car body falls across
    the plate, its edge sharp; the held-out Moroccan crops lose a digit at such an edge
    (``59017-A-40`` read ``5901A0``: models/recogniser.md, Candidate 4.14), and no
    degradation above draws one. The edge is a straight line through a point of the
    middle 70 % of the width, leaning up to :data:`SHADOW_MAX_TILT` degrees; the side it
    darkens is drawn, then its depth (:data:`SHADOW_DEPTH`) and softness
    (:data:`SHADOW_EDGE_PX`)."""
    h, w = image.shape[:2]
    px, py = rng.uniform(0.15 * w, 0.85 * w), rng.uniform(0.0, h)
    tilt = np.deg2rad(rng.uniform(-SHADOW_MAX_TILT, SHADOW_MAX_TILT))
    side = 1.0 if rng.random() < 0.5 else -1.0
    depth = float(rng.uniform(*SHADOW_DEPTH))
    edge = float(rng.uniform(*SHADOW_EDGE_PX))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    distance = ((xx - px) * np.cos(tilt) + (yy - py) * np.sin(tilt)) * side
    shaded = 1.0 / (1.0 + np.exp(-np.clip(distance / edge, -30.0, 30.0)))
    gain = 1.0 - (1.0 - depth) * shaded
    if image.ndim == 3:
        gain = gain[:, :, None]
    out: Image = np.clip(np.rint(image.astype(np.float32) * gain), 0, 255).astype(np.uint8)
    return out


def field_degrade(image: Image, rng: np.random.Generator) -> Image:
    """A random chain of the degradations above (each with its own probability)."""
    out = image
    if rng.random() < 0.5:
        out = motion_or_defocus(out, rng)
    if rng.random() < 0.12:
        out = glare(out, rng)
    if rng.random() < 0.2:
        out = dirt(out, rng)
    if rng.random() < 0.1:
        out = edge_occlusion(out, rng)
    light = rng.random()
    if light < 0.12:
        out = low_light(out, rng)
    elif light < 0.2:
        out = ir_night(out, rng)
    elif light < 0.75:
        gain, bias = float(rng.uniform(0.6, 1.3)), float(rng.uniform(-50, 40))
        out = np.asarray(cv2.convertScaleAbs(out, alpha=gain, beta=bias), np.uint8)
    if rng.random() < 0.4:
        sigma = float(rng.uniform(1.0, 8.0))
        noisy = out.astype(np.float32) + rng.normal(0.0, sigma, size=out.shape).astype(np.float32)
        out = np.clip(noisy, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        out = codec(out, rng)
    return out


ONE_LINE_MIN_ASPECT: Final = 3.1
"""One-line crops are kept at least this wide (width / height): the runtime reads
anything under ``agent.reader.layout.TWO_LINE_MAX_ASPECT`` (2.6) as two-line."""
TWO_LINE_MAX_ASPECT: Final = 2.2
"""Two-line crops are kept at most this wide, well under the runtime's 2.6."""


def _crop_box(
    pw: int,
    ph: int,
    *,
    two_line: bool,
    side: tuple[float, float],
    vertical: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` margins in px (negative: cut into the plate).

    The vertical margins shrink when a one-line crop would come out narrower than
    :data:`ONE_LINE_MIN_ASPECT`; the side margins when a two-line crop would be
    wider than :data:`TWO_LINE_MAX_ASPECT`.
    """
    left, right = (round(pw * rng.uniform(*side)) for _ in range(2))
    top, bottom = (round(ph * rng.uniform(*vertical)) for _ in range(2))
    width, height = pw + left + right, ph + top + bottom
    if not two_line and width / height < ONE_LINE_MIN_ASPECT:
        extra = max(0.0, width / ONE_LINE_MIN_ASPECT - ph)
        scale = extra / max(top + bottom, 1) if top + bottom > 0 else 0.0
        top, bottom = int(top * scale), int(bottom * scale)
    elif two_line and width / height > TWO_LINE_MAX_ASPECT:
        extra = height * TWO_LINE_MAX_ASPECT - pw
        scale = max(0.0, extra / max(left + right, 1))
        left, right = int(left * scale), int(right * scale)
    return left, right, top, bottom


def _on_background(
    plate: Image, rng: np.random.Generator, pad_y: int, pad_x: int, shade: bool
) -> npt.NDArray[np.uint8]:
    ph, pw = plate.shape[:2]
    canvas = np.empty((ph + 2 * pad_y, pw + 2 * pad_x, 3), np.uint8)
    canvas[...] = rng.integers(0, 256, size=3).astype(np.uint8)
    if shade and rng.random() < 0.5:  # bumper edge / recess shading
        y = int(rng.integers(0, canvas.shape[0]))
        factor = float(rng.uniform(0.3, 1.0))
        if y < canvas.shape[0]:
            canvas[y:] = cv2.convertScaleAbs(canvas[y:], alpha=factor)
    canvas[pad_y : pad_y + ph, pad_x : pad_x + pw] = plate
    return canvas


def field_plate_crop(text: str, rng: np.random.Generator, *, two_line: bool = False) -> Image:
    """A field-like BGR crop of plate ``text`` (:func:`render_any_plate`) at its natural aspect.

    The plate (one-line 14-80 px tall, two-line 24-120 px) sits on a car-coloured
    background, is rotated and warped, cropped with detector-like loose margins,
    then degraded with :func:`field_degrade`. One-line crops stay wider than
    3.1:1, two-line ones (``two_line`` or a motorcycle plate) narrower than 2.2:1.
    """
    two = _is_two_line(text, two_line)
    plate_h = int(rng.integers(24, 120) if two else rng.integers(14, 80))
    plate = render_any_plate(text, rng, plate_h, two_line=two)
    ph, pw = plate.shape[:2]
    pad_y, pad_x = ph, max(pw // 3, ph // 2)
    canvas = _on_background(plate, rng, pad_y, pad_x, shade=True)
    canvas = rotate_warp(canvas, rng, max_deg=7.0, amount=0.03)
    left, right, top, bottom = _crop_box(
        pw, ph, two_line=two, side=(-0.02, 0.15), vertical=(-0.08, 0.5), rng=rng
    )
    crop = canvas[pad_y - top : pad_y + ph + bottom, pad_x - left : pad_x + pw + right]
    return field_degrade(np.ascontiguousarray(crop), rng)


def field_crop(
    text: str,
    rng: np.random.Generator,
    out_height: int = 32,
    out_width: int = 128,
    *,
    two_line: bool = False,
) -> Gray:
    """A grayscale ``out_height x out_width`` recogniser training strip of ``text``.

    :func:`field_plate_crop` made gray; a one-line crop is resized to the strip, a
    two-line one (``two_line`` or a motorcycle plate) becomes the strip of
    :func:`agent.reader.layout.two_line_composite` (top line left, bottom right),
    whose label is ``top + bottom`` of ``agent.reader.plate_text.two_line_parts``.
    """
    crop = field_plate_crop(text, rng, two_line=two_line)
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    if _is_two_line(text, two_line):
        return two_line_composite(np.ascontiguousarray(gray), out_height, out_width)
    resized = cv2.resize(gray, (out_width, out_height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized)


def clean_plate_crop(text: str, rng: np.random.Generator, *, two_line: bool = False) -> Image:
    """A clean BGR crop of ``text`` at its natural aspect, in the v1 test style.

    MA one-line and French SIV plates are drawn by the v1 renderer
    (:func:`agent.synth.plates.render_plate`), the other kinds by
    :func:`render_any_plate`; the plate (one-line 18-70 px tall, two-line 30-110)
    is cropped with the runtime's margins (5 % of the width left and right, 12 % of
    the height above and below, +-2 % jitter) and lightly blurred, relit, noised
    and JPEG'd as in :func:`agent.synth.plates.training_crop`.
    """
    two = _is_two_line(text, two_line)
    plate_h = int(rng.integers(30, 110) if two else rng.integers(18, 70))
    kind = plate_kind(text, two_line=two)
    if kind == "ma" or (kind == "fr" and _SIV_SHAPE.match(text)):
        plate = render_plate(text, rng, height=plate_h)
    else:
        plate = render_any_plate(text, rng, plate_h, two_line=two)
    ph, pw = plate.shape[:2]
    pad_y, pad_x = ph // 2, pw // 4
    canvas = _on_background(plate, rng, pad_y, pad_x, shade=False)
    if rng.random() < 0.8:
        canvas = perspective_jitter(canvas, rng, amount=0.02)
    left, right = (round(pw * rng.uniform(0.03, 0.07)) for _ in range(2))
    top, bottom = (round(ph * rng.uniform(0.10, 0.14)) for _ in range(2))
    crop = np.ascontiguousarray(
        canvas[pad_y - top : pad_y + ph + bottom, pad_x - left : pad_x + pw + right]
    )
    return clean_degrade(crop, rng)


__all__ = [
    "EU_COUNTRIES",
    "MA_LETTERS",
    "clean_plate_crop",
    "codec",
    "dirt",
    "edge_occlusion",
    "field_crop",
    "field_degrade",
    "field_plate_crop",
    "glare",
    "ir_night",
    "low_light",
    "motion_or_defocus",
    "plate_kind",
    "random_eu_text",
    "random_training_plate",
    "random_training_text",
    "render_any_plate",
    "render_training_plate",
    "rotate_warp",
]
