"""Plates the grammar does not know, square European plates and French FNI colours.

An officer in Morocco meets the plates of visiting cars from all over Europe,
not only the countries :data:`agent.reader.plate_text.EU_PATTERNS`
names, and square or two-line rear plates. The recogniser must read them
character by character (the read is reported as format ``UNKNOWN`` or ``EU``,
agent.reader.pipeline). This module draws them for training:

- :func:`random_wide_plate`: ``(text, country, two_line)``: a one-line plate of
  one of :data:`WIDE_COUNTRIES` (RO, SK, CZ, AT, CH, SE, DK, NO, HU, BG, HR,
  GB, LU, IE, SI, LT and the seven known ones), a square / two-line plate of
  any of them (text split into two lines at a letter/digit boundary), or a
  French FNI plate in one of its three colours (white front, yellow rear, black
  classic with silver characters), one- or two-line;
- :func:`with_rare_letters`: the same plate with some letters swapped for ``I``, ``O``,
  ``Q`` or ``U``, which the drawn layouts (and the Moroccan and SIV plates) hardly hold;
- :func:`render_wide_plate`: the plate drawn (BGR), on request with the emblems printed
  in the line of some countries (:data:`EMBLEM_COUNTRIES`: German seals, Austrian,
  Slovak, Croatian and Slovenian coats of arms, Swiss shields) or in other faces than
  DejaVu (:data:`agent.synth.plates.LATIN_FONTS`);
- :func:`wide_field_crop`: the recogniser's gray training strip, two-line
  plates as :func:`agent.reader.layout.two_line_composite`.

The text is the canonical text (:func:`agent.reader.plate_text.canonicalize`
of the compact text: ``EU``, ``FR`` or ``UNKNOWN``); a two-line plate's
training label is the compact text, top line first (its reading order).

Reader training only: the street scenes and the training mix of
:mod:`agent.synth.augment` do not use it, so the detector's data is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from agent.frames import Image
from agent.reader.layout import two_line_composite
from agent.reader.plate_text import canonicalize
from agent.synth.augment import (
    _crop_box,
    _finish,
    _on_background,
    _paper,
    _row,
    _style,
    field_degrade,
    rotate_warp,
)
from agent.synth.plates import BASE_H, BASE_W, LATIN_FONTS, SIV_LETTERS, _band_image

Gray = npt.NDArray[np.uint8]
Draw = Callable[[np.random.Generator], list[str]]
"""Draws a plate's printed groups, e.g. ``["B", "21", "GSB"]``."""

_L: Final = "ABCDEFGHJKLMNPRSTUVWXYZ"
_ALL: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_YELLOW: Final = (240, 200, 30)


def _let(rng: np.random.Generator, n: int, alphabet: str = _L) -> str:
    return "".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), size=n))


def _dig(rng: np.random.Generator, n: int, lead_zero: bool = True) -> str:
    if lead_zero:
        return "".join(str(int(d)) for d in rng.integers(0, 10, size=n))
    return str(int(rng.integers(10 ** (n - 1), 10**n)))


def _ro(rng: np.random.Generator) -> list[str]:
    if rng.random() < 0.5:
        return ["B", _dig(rng, int(rng.integers(2, 4))), _let(rng, 3)]
    return [_let(rng, 2), _dig(rng, 2), _let(rng, 3)]


_GROUPS: Final[dict[str, Draw]] = {
    "RO": _ro,
    "SK": lambda r: [_let(r, 2), _dig(r, 3), _let(r, 2)],
    "CZ": lambda r: [_dig(r, 1, False) + _let(r, 1) + _dig(r, 1), _dig(r, 4)],
    "AT": lambda r: [
        _let(r, int(r.integers(1, 3))),
        _dig(r, int(r.integers(2, 6)), False),
        _let(r, int(r.integers(1, 3))),
    ],
    "CH": lambda r: [_let(r, 2), _dig(r, int(r.integers(3, 7)), False)],
    "SE": lambda r: [_let(r, 3), _dig(r, 2) + (_let(r, 1) if r.random() < 0.4 else _dig(r, 1))],
    "DK": lambda r: [_let(r, 2), _dig(r, 2, False), _dig(r, 3)],
    "NO": lambda r: [_let(r, 2), _dig(r, 5, False)],
    "HU": lambda r: [_let(r, 3), _dig(r, 3)],
    "BG": lambda r: [_let(r, int(r.integers(1, 3))), _dig(r, 4), _let(r, 2)],
    "HR": lambda r: [
        _let(r, 2),
        _dig(r, int(r.integers(3, 5)), False),
        _let(r, int(r.integers(1, 3))),
    ],
    "GB": lambda r: [_let(r, 2) + _dig(r, 2), _let(r, 3)],
    "LU": lambda r: [_let(r, 2), _dig(r, 4)],
    "IE": lambda r: [
        _dig(r, 2),
        _let(r, int(r.integers(1, 3))),
        _dig(r, int(r.integers(1, 6)), False),
    ],
    "SI": lambda r: [_let(r, 2), _dig(r, 2) + _let(r, 1) + _dig(r, 2)],
    "LT": lambda r: [_let(r, 3), _dig(r, 3)],
    "DE": lambda r: [
        _let(r, int(r.integers(1, 4)), _ALL),
        _let(r, int(r.integers(1, 3)), _ALL),
        _dig(r, int(r.integers(1, 5)), False),
    ],
    "ES": lambda r: [_dig(r, 4), _let(r, 3, "BCDFGHJKLMNPRSTVWXYZ")],
    "IT": lambda r: [_let(r, 2), _dig(r, 3), _let(r, 2)],
    "BE": lambda r: [_dig(r, 1, False) + _let(r, 3, _ALL), _dig(r, 3)],
    "NL": lambda r: [_let(r, 2), _dig(r, 3), _let(r, 1)],
    "PT": lambda r: [_let(r, 2), _dig(r, 2), _let(r, 2)],
    "PL": lambda r: [_let(r, int(r.integers(2, 4))), _dig(r, 5 - int(r.integers(0, 2)))],
}
WIDE_COUNTRIES: Final = tuple(_GROUPS)
"""Countries drawn; the first sixteen had layouts the grammar did not know when this
module was written (the grammar has known the RO and GB shapes since 2026-12-02)."""

_BAND: Final = {
    "AT": "A",
    "SE": "S",
    "HU": "H",
    "LU": "L",
    "IE": "IRL",
    "DE": "D",
    "ES": "E",
    "IT": "I",
    "BE": "B",
    "PT": "P",
}
_NO_BAND: Final = frozenset({"CH", "NO"})
_YELLOW_PAPER: Final = {"NL": 0.9, "LU": 0.9, "GB": 0.5}
"""Share of yellow plates (NL and LU always-ish; GB rear plates)."""


def _fni_groups(rng: np.random.Generator) -> list[str]:
    while True:
        groups = [
            _dig(rng, int(rng.integers(1, 5)), False),
            _let(rng, int(rng.integers(2, 4)), SIV_LETTERS),
            f"{int(rng.integers(1, 96)):02d}",
        ]
        if groups[2] != "20" and canonicalize("".join(groups))[1] == "FR":
            return groups


def random_wide_plate(rng: np.random.Generator) -> tuple[str, str, bool, list[str]]:
    """``(canonical text, country, two_line, printed groups)`` of a plate for this module.

    45 % one-line plates of :data:`WIDE_COUNTRIES`, 30 % square / two-line ones,
    25 % French FNI (``country`` ``"FR"``; a third of them square).
    """
    draw = rng.random()
    if draw < 0.25:
        groups, country = _fni_groups(rng), "FR"
        two_line = rng.random() < 0.33
    else:
        country = WIDE_COUNTRIES[int(rng.integers(len(WIDE_COUNTRIES)))]
        groups = _GROUPS[country](rng)
        two_line = draw >= 0.7
    text, _fmt = canonicalize("".join(groups))
    return text, country, two_line, groups


RARE_LETTERS: Final = "IOQU"
"""Letters the training plates hardly hold: :data:`_L` leaves out ``I``, ``O`` and ``Q``,
the SIV series ``I``, ``O`` and ``U``, Moroccan plates have no Latin letter. Real European
plates print them (``BIA KY73``, ``VI 820``, ``TOYDR``), and a recogniser that never saw
them drops the bare stroke of an ``I`` as it drops a plate's divider, and reads ``U`` as
``0``."""


def with_rare_letters(groups: list[str], rng: np.random.Generator, share: float) -> list[str]:
    """``groups`` with each Latin letter swapped, with chance ``share``, for one of
    :data:`RARE_LETTERS` (one draw per letter, a second when it is swapped; none for digits)."""
    out = []
    for group in groups:
        chars = list(group)
        for i, ch in enumerate(chars):
            if "A" <= ch <= "Z" and rng.random() < share:
                chars[i] = RARE_LETTERS[int(rng.integers(len(RARE_LETTERS)))]
        out.append("".join(chars))
    return out


def _split_groups(groups: list[str]) -> tuple[list[str], list[str]]:
    """The groups of the top and bottom lines of a two-line plate: cut nearest the middle."""
    total = sum(len(g) for g in groups)
    best, cut, acc = total, 1, 0
    for i, g in enumerate(groups[:-1], start=1):
        acc += len(g)
        if abs(2 * acc - total) < best:
            best, cut = abs(2 * acc - total), i
    return groups[:cut], groups[cut:]


# ------------------------------------------------------------------ emblems

EMBLEM_COUNTRIES: Final = ("DE", "AT", "SK", "HR", "SI", "CH")
"""Countries whose plates print an emblem in the line of characters: two round seals
(registration sticker over the state's seal) between a German district and its letters, a
coat of arms after the district of an Austrian, Slovak, Croatian or Slovenian plate, the
Swiss shield and the canton's before and after a Swiss plate's canton letters. A
recogniser that never saw them reads them as a character (``KL8YA542``, ``SC0949AD``,
``0AG12393``: models/recogniser.md, Candidate 4.12)."""
_STICKER_COLOURS: Final = (
    (230, 120, 160),
    (90, 170, 90),
    (235, 200, 60),
    (240, 140, 50),
    (80, 130, 210),
    (150, 100, 60),
    (200, 60, 60),
)
_RED: Final = (200, 30, 40)
_WHITE: Final = (235, 235, 235)
_BLUE: Final = (30, 70, 160)


def _slovak_arms(art: Image, rng: np.random.Generator) -> None:
    """White double cross on red, over blue hills."""
    height, width = art.shape[:2]
    art[...] = _RED
    cx, t = width // 2, max(1, width // 8)
    art[height // 10 : int(height * 0.75), cx - t : cx + t + 1] = _WHITE
    for k, reach in ((0.25, 0.22), (0.45, 0.32)):
        y, half = int(height * k), int(width * reach)
        art[y - t : y + t + 1, cx - half : cx + half + 1] = _WHITE
    cv2.ellipse(art, (cx, height), (width // 2, height // 4), 0, 180, 360, _BLUE, -1)


def _croatian_arms(art: Image, rng: np.random.Generator) -> None:
    """Red and white chequers."""
    height, width = art.shape[:2]
    n = 5
    for i in range(n):
        for j in range(n):
            colour = _RED if (i + j) % 2 == 0 else _WHITE
            art[i * height // n : (i + 1) * height // n, j * width // n : (j + 1) * width // n] = (
                colour
            )


def _slovenian_arms(art: Image, rng: np.random.Generator) -> None:
    """A white mountain on blue under three yellow stars."""
    height, width = art.shape[:2]
    art[...] = _BLUE
    peak = np.array([(0, height * 3 // 4), (width // 2, height // 4), (width - 1, height * 3 // 4)])
    cv2.fillPoly(art, [peak.astype(np.int32)], _WHITE)
    for x in (width // 4, width // 2, 3 * width // 4):
        cv2.circle(art, (x, height // 8), max(1, width // 14), (240, 210, 40), -1)


def _swiss_cross(art: Image, rng: np.random.Generator) -> None:
    """The white cross on red."""
    height, width = art.shape[:2]
    art[...] = _RED
    cx, cy, arm, t = width // 2, height * 2 // 5, width // 3, max(1, width // 7)
    art[cy - arm : cy + arm + 1, cx - t : cx + t + 1] = _WHITE
    art[cy - t : cy + t + 1, cx - arm : cx + arm + 1] = _WHITE


def _district_arms(art: Image, rng: np.random.Generator) -> None:
    """A district's or canton's arms: two tinctures, cut across, down or slantwise."""
    height, width = art.shape[:2]
    art[...] = _STICKER_COLOURS[int(rng.integers(len(_STICKER_COLOURS)))]
    second = _WHITE if rng.random() < 0.6 else (20, 20, 20)
    cut = int(rng.integers(3))
    if cut == 0:
        art[height // 3 : 2 * height // 3] = second
    elif cut == 1:
        art[:, width // 2 :] = second
    else:
        cv2.fillPoly(
            art, [np.array([(0, 0), (width - 1, 0), (width - 1, height - 1)], np.int32)], second
        )


_ARMS: Final[dict[str, Callable[[Image, np.random.Generator], None]]] = {
    "SK": _slovak_arms,
    "HR": _croatian_arms,
    "SI": _slovenian_arms,
    "CH": _swiss_cross,
}
"""Each country's arms; the others (Austrian districts, Swiss cantons) draw
:func:`_district_arms`."""


def _shield(arms: str, width: int, height: int, rng: np.random.Generator) -> Image:
    """The coat of arms ``arms`` (a key of :data:`_ARMS`, else a district's) on a shield
    (RGB, ``height`` x ``width``, black outside the shield), drawn plainly."""
    art = np.empty((height, width, 3), np.uint8)
    _ARMS.get(arms, _district_arms)(art, rng)
    outline = np.array(
        [
            (0, 0),
            (width - 1, 0),
            (width - 1, int(height * 0.6)),
            (width // 2, height - 1),
            (0, int(height * 0.6)),
        ],
        np.int32,
    )
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [outline], 1)
    art[mask == 0] = 0
    cv2.polylines(art, [outline], True, (40, 40, 40), 1)
    return art


def _seals(width: int, height: int, rng: np.random.Generator) -> Image:
    """A German plate's two round seals, stacked (RGB): the coloured registration sticker
    over the state's seal (a light disc with a small coat of arms)."""
    art = np.zeros((height, width, 3), np.uint8)
    radius = max(2, min(width // 2, height // 4) - 1)
    cx = width // 2
    top = _STICKER_COLOURS[int(rng.integers(len(_STICKER_COLOURS)))]
    for cy, fill in ((height // 2 - radius - 1, top), (height // 2 + radius + 1, (215, 215, 210))):
        cv2.circle(art, (cx, cy), radius, fill, -1)
        cv2.circle(art, (cx, cy), radius, (70, 70, 70), max(1, radius // 6))
    inner = max(1, radius // 2)
    arms = _STICKER_COLOURS[int(rng.integers(len(_STICKER_COLOURS)))]
    cy = height // 2 + radius + 1
    cv2.rectangle(
        art, (cx - inner // 2 - 1, cy - inner), (cx + inner // 2 + 1, cy + inner), arms, -1
    )
    return art


def _paste_art(canvas: Image, art: Image, x: int, y: int) -> None:
    """``art`` onto ``canvas`` at ``(x, y)`` where it is not black (clipped)."""
    x, y = max(0, x), max(0, y)
    region = canvas[y : y + art.shape[0], x : x + art.shape[1]]
    part = art[: region.shape[0], : region.shape[1]]
    drawn = part.any(axis=2)
    region[drawn] = part[drawn]


def _line_with_emblems(
    country: str,
    groups: list[str],
    *,
    font: str,
    char_h: int,
    room: int,
    squeeze: float,
    spacing: float,
    rng: np.random.Generator,
) -> tuple[Gray, list[tuple[int, Image]]]:
    """A plate's first line's ink mask with room left for its emblems, and each emblem with
    the x of its left edge in the mask (before the line is fitted to ``room``)."""
    emblem_w = max(4, round(char_h * rng.uniform(0.45, 0.65)))
    gap = max(1, round(char_h * rng.uniform(0.05, 0.15)))
    art_h = char_h if country == "DE" else max(4, round(char_h * rng.uniform(0.7, 0.9)))
    parts: list[Gray | str]
    if country == "CH":  # the Swiss cross before the canton's letters, its arms after
        line = _row(" ".join(groups), font, char_h, room, squeeze=squeeze, spacing=spacing)
        parts = ["CH", line, "canton"]
    else:  # after the district: German seals, or the country's or district's arms
        head = _row(groups[0], font, char_h, room, squeeze=squeeze, spacing=spacing)
        tail = groups[1:]
        parts = [head, "seals" if country == "DE" else country]
        if tail:
            parts.append(_row(" ".join(tail), font, char_h, room, squeeze=squeeze, spacing=spacing))
    masks, emblems, x = [], [], 0
    for part in parts:
        if isinstance(part, str):
            art = (
                _seals(emblem_w, art_h, rng)
                if part == "seals"
                else _shield(part, emblem_w, art_h, rng)
            )
            masks.append(np.zeros((char_h, emblem_w + 2 * gap), np.uint8))
            emblems.append((x + gap, art))
            x += emblem_w + 2 * gap
        else:
            masks.append(part)
            x += part.shape[1]
    return np.hstack(masks), emblems


def _narrowed(
    mask: Gray, arts: list[tuple[int, Image]], room: int
) -> tuple[Gray, list[tuple[int, Image]]]:
    """A line's mask and its emblems narrowed to ``room`` pixels when wider, as
    :func:`~agent.synth.augment._row` narrows a line of characters."""
    if mask.shape[1] <= room:
        return mask, arts
    f = room / mask.shape[1]
    narrow = np.asarray(
        cv2.resize(mask, (room, mask.shape[0]), interpolation=cv2.INTER_AREA), np.uint8
    )
    size = [(max(1, round(art.shape[1] * f)), art.shape[0]) for _x, art in arts]
    return narrow, [
        (round(x * f), np.asarray(cv2.resize(art, wh, interpolation=cv2.INTER_NEAREST), np.uint8))
        for (x, art), wh in zip(arts, size, strict=True)
    ]


def _colours(country: str, rng: np.random.Generator) -> tuple[tuple[int, int, int], int, bool]:
    """Paper (RGB), ink (gray level) and whether an EU band is drawn."""
    if country == "FR":
        r = rng.random()
        if r < 0.3:  # black classic, silver characters
            return (20, 20, 22), int(rng.integers(190, 235)), False
        if r < 0.65:  # yellow rear
            return _YELLOW, int(rng.integers(0, 50)), rng.random() < 0.3
        return _paper(rng), int(rng.integers(0, 50)), rng.random() < 0.5
    yellow = rng.random() < _YELLOW_PAPER.get(country, 0.0)
    band = country not in _NO_BAND and rng.random() < 0.85
    return (_YELLOW if yellow else _paper(rng)), int(rng.integers(0, 50)), band


SPREAD_SPACING: Final = (0.2, 0.7)
"""Character spacing (share of the font size) of a spread-out square plate line."""


def render_wide_plate(
    country: str,
    groups: list[str],
    two_line: bool,
    rng: np.random.Generator,
    height: int,
    *,
    spread_share: float = 0.0,
    emblems: float = 0.0,
    emblem_rng: np.random.Generator | None = None,
    fonts: float = 0.0,
    font_rng: np.random.Generator | None = None,
) -> Image:
    """Draw the plate (BGR, ``height`` px tall): one line ~4.7:1, two lines ~1.4:1.

    ``spread_share`` of the two-line plates get their characters spread over the
    line (:data:`SPREAD_SPACING`), as Polish, Swedish or Norwegian square plates
    print three letters across the whole width (``K O S`` over ``8 A 5 3``); no
    random draw is made when it is 0, so earlier recipes' plates are unchanged.
    ``emblems`` of the plates of :data:`EMBLEM_COUNTRIES` print their emblems in their
    (first) line, every draw for them made from ``emblem_rng``: the characters move
    aside for them, but ``rng`` draws what it would without them. ``fonts`` of the plates
    are drawn in one of :data:`agent.synth.plates.LATIN_FONTS` instead of DejaVu, chosen
    from ``font_rng``, so that ``rng`` draws the same too.
    """
    paper, ink, band = _colours(country, rng)
    colour = (ink, ink, ink)
    font, squeeze, spacing = _style(rng)
    if font_rng is not None and fonts > 0 and font_rng.random() < fonts:
        font = LATIN_FONTS[int(font_rng.integers(len(LATIN_FONTS)))]
    if two_line and spread_share > 0 and rng.random() < spread_share:
        spacing = float(rng.uniform(*SPREAD_SPACING))
    if two_line:
        base_h, base_w = 220, int(rng.integers(280, 340))
    else:
        base_h, base_w = BASE_H, BASE_W
    canvas = np.empty((base_h, base_w, 3), np.uint8)
    canvas[...] = paper
    left = 0
    if band:
        left = int(rng.integers(38, 52)) if not two_line else int(rng.integers(34, 48))
        strip = _band_image(left, _BAND.get(country, country))
        canvas[:, :left] = cv2.resize(strip, (left, base_h), interpolation=cv2.INTER_AREA)
    room = base_w - left - 16
    lines = list(_split_groups(groups)) if two_line else [groups]
    char_h = int(base_h * rng.uniform(0.34, 0.4)) if two_line else int(rng.integers(60, 82))
    gap = (base_h - char_h * len(lines)) // (len(lines) + 1)
    y = gap + int(rng.integers(-4, 5))
    with_emblems = (
        emblem_rng is not None
        and emblems > 0
        and country in EMBLEM_COUNTRIES
        and emblem_rng.random() < emblems
    )
    for n, line in enumerate(lines):
        arts: list[tuple[int, Image]] = []
        if with_emblems and emblem_rng is not None and n == 0:
            mask, arts = _line_with_emblems(
                country,
                line,
                font=font,
                char_h=char_h,
                room=room,
                squeeze=squeeze,
                spacing=spacing,
                rng=emblem_rng,
            )
            mask, arts = _narrowed(mask, arts, room)
        else:
            mask = _row(" ".join(line), font, char_h, room, squeeze=squeeze, spacing=spacing)
        x = left + 8 + (room - mask.shape[1]) // 2 + int(rng.integers(-5, 6))
        region = canvas[y : y + mask.shape[0], x : x + mask.shape[1]]
        alpha = mask[: region.shape[0], : region.shape[1], None].astype(np.float32) / 255.0
        region[...] = (region * (1.0 - alpha) + np.array(colour, np.float32) * alpha).astype(
            np.uint8
        )
        for ax, art in arts:
            _paste_art(canvas, art, x + ax, y + (char_h - art.shape[0]) // 2)
        y += char_h + gap
    _finish(canvas, rng, min(ink, 200))
    width = max(2, round(base_w * height / base_h * rng.uniform(0.9, 1.1)))
    interp = cv2.INTER_AREA if height < base_h else cv2.INTER_LINEAR
    small = cv2.resize(canvas, (width, height), interpolation=interp)
    return np.ascontiguousarray(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))


def wide_field_plate_crop(
    country: str,
    groups: list[str],
    two_line: bool,
    rng: np.random.Generator,
    *,
    spread_share: float = 0.0,
    emblems: float = 0.0,
    emblem_rng: np.random.Generator | None = None,
    fonts: float = 0.0,
    font_rng: np.random.Generator | None = None,
) -> Image:
    """A field-like BGR crop (as :func:`agent.synth.augment.field_plate_crop`) of the plate."""
    plate_h = int(rng.integers(24, 120) if two_line else rng.integers(14, 80))
    plate = render_wide_plate(
        country,
        groups,
        two_line,
        rng,
        plate_h,
        spread_share=spread_share,
        emblems=emblems,
        emblem_rng=emblem_rng,
        fonts=fonts,
        font_rng=font_rng,
    )
    ph, pw = plate.shape[:2]
    pad_y, pad_x = ph, max(pw // 3, ph // 2)
    canvas = _on_background(plate, rng, pad_y, pad_x, shade=True)
    canvas = rotate_warp(canvas, rng, max_deg=7.0, amount=0.03)
    left, right, top, bottom = _crop_box(
        pw, ph, two_line=two_line, side=(-0.02, 0.15), vertical=(-0.08, 0.5), rng=rng
    )
    crop = canvas[pad_y - top : pad_y + ph + bottom, pad_x - left : pad_x + pw + right]
    return field_degrade(np.ascontiguousarray(crop), rng)


def wide_field_crop(
    country: str,
    groups: list[str],
    two_line: bool,
    rng: np.random.Generator,
    *,
    out_height: int = 32,
    out_width: int = 128,
    spread_share: float = 0.0,
    emblems: float = 0.0,
    emblem_rng: np.random.Generator | None = None,
    fonts: float = 0.0,
    font_rng: np.random.Generator | None = None,
) -> Gray:
    """The recogniser's gray training strip of the plate (two-line: the runtime's composite)."""
    crop = wide_field_plate_crop(
        country,
        groups,
        two_line,
        rng,
        spread_share=spread_share,
        emblems=emblems,
        emblem_rng=emblem_rng,
        fonts=fonts,
        font_rng=font_rng,
    )
    gray = np.ascontiguousarray(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    if two_line:
        return two_line_composite(gray, out_height, out_width)
    resized = cv2.resize(gray, (out_width, out_height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized)


def training_label(groups: list[str]) -> str:
    """The token label of the plate: its compact text in reading order (top line first)."""
    return "".join(groups)


__all__ = [
    "EMBLEM_COUNTRIES",
    "RARE_LETTERS",
    "WIDE_COUNTRIES",
    "random_wide_plate",
    "render_wide_plate",
    "training_label",
    "wide_field_crop",
    "wide_field_plate_crop",
    "with_rare_letters",
]
