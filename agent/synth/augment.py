"""Field-like degradations and varied plate styles for training data (deterministic, seeded).

The first recogniser learnt our clean renderer rather than real plates (3 % on
real Moroccan crops). These helpers make synthetic data less flattering:

- :func:`render_training_plate`: more plate styles than :func:`render_plate`
  (narrow "DIN-like" lettering by squeezing the glyphs, yellow and silver
  plates, mounting screws, frames, the temporary ``NNNNNN WW`` series, old
  French FNI ``123 AB 45`` plates, black FNI plates with white letters);
- :func:`field_degrade`: what a body or car camera does to a plate: rotation,
  perspective, motion blur and defocus, low light with noise, an IR night
  look, glare, dirt, partial occlusion at the edges, and JPEG or H.264-like
  (down-scaled, blocky) compression;
- :func:`random_training_text`: plate texts for training, including the
  special series, in the proportions used by models/train_recogniser.py.

Every function takes a ``numpy.random.Generator``; same seed, same pixels.
The sample clip does not use these (its pixels must not change).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from agent.frames import Image
from agent.reader.plate_text import LATIN_TO_ARABIC, canonicalize
from agent.synth.plates import (
    BASE_H,
    BASE_W,
    MA_LETTERS,
    SIV_LETTERS,
    TEXT_FONTS,
    _eu_band,
    _font,
    _paste_ink,
    _text_image,
    random_plate_text,
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
    number = int(rng.integers(1, 10000))
    letters = "".join(
        SIV_LETTERS[int(i)] for i in rng.integers(0, 23, size=int(rng.integers(2, 4)))
    )
    dept = int(rng.integers(1, 96))
    dept = 21 if dept == 20 else dept
    return f"{number}-{letters}-{dept:02d}"


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
        _eu_band(canvas, 0, left, "F")
        if text[0].isalpha() and rng.random() < 0.85:
            right = int(rng.integers(38, 52))
            _eu_band(canvas, BASE_W - right, right, None)
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


def render_training_plate(text: str, rng: np.random.Generator, height: int = 110) -> Image:
    """Draw canonical ``text`` (MA incl. ``NNNNNN-WW``, FR SIV or FNI) in a random style, BGR.

    Raises ``ValueError`` for a text of another format.
    """
    canonical, fmt = canonicalize(text)
    if canonical != text or fmt not in ("MA", "FR"):
        raise ValueError(f"can only render canonical MA or French plates, not {text!r}")
    rgb = _moroccan_styled(text, rng) if fmt == "MA" else _french_styled(text, rng)
    width = round(BASE_W * height / BASE_H * rng.uniform(0.9, 1.1))
    interp = cv2.INTER_AREA if height < BASE_H else cv2.INTER_LINEAR
    bgr = cv2.cvtColor(cv2.resize(rgb, (width, height), interpolation=interp), cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(bgr)


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
    ok, data = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return image
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR))


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


def field_crop(
    text: str, rng: np.random.Generator, out_height: int = 32, out_width: int = 128
) -> Gray:
    """A grayscale recogniser training crop of ``text`` drawn with :func:`render_training_plate`.

    The plate (14-80 px tall) sits on a car-coloured, textured background, is
    rotated and warped, cropped with detector-like loose margins, then degraded
    with :func:`field_degrade`.
    """
    plate_h = int(rng.integers(14, 80))
    plate = render_training_plate(text, rng, height=plate_h)
    ph, pw = plate.shape[:2]
    pad_y, pad_x = ph, pw // 3
    canvas = np.empty((ph + 2 * pad_y, pw + 2 * pad_x, 3), np.uint8)
    canvas[...] = rng.integers(0, 256, size=3).astype(np.uint8)
    if rng.random() < 0.5:  # bumper edge / recess shading
        y = int(rng.integers(0, canvas.shape[0]))
        canvas[y:] = (canvas[y:].astype(np.int16) * rng.uniform(0.3, 1.0)).astype(np.uint8)
    canvas[pad_y : pad_y + ph, pad_x : pad_x + pw] = plate
    canvas = rotate_warp(canvas, rng, max_deg=7.0, amount=0.03)
    left = pad_x - round(pw * rng.uniform(-0.02, 0.15))
    right = pad_x + pw + round(pw * rng.uniform(-0.02, 0.15))
    top = pad_y - round(ph * rng.uniform(-0.08, 0.5))
    bottom = pad_y + ph + round(ph * rng.uniform(-0.08, 0.5))
    crop = field_degrade(np.ascontiguousarray(canvas[top:bottom, left:right]), rng)
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    resized = cv2.resize(gray, (out_width, out_height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized)


__all__ = [
    "MA_LETTERS",
    "codec",
    "dirt",
    "edge_occlusion",
    "field_crop",
    "field_degrade",
    "glare",
    "ir_night",
    "low_light",
    "motion_or_defocus",
    "random_training_text",
    "render_training_plate",
    "rotate_warp",
]
