"""Deterministic synthetic plates: Moroccan and French SIV, rendered with PIL.

Every function that draws takes a ``numpy.random.Generator``; the same seed gives
the same pixels. Plates are drawn at a 520 x 110 "millimetre" layout (the EU and
Moroccan size) and resized, so every plate has the real aspect ratio (~4.7:1).

- Moroccan: ``SERIAL | letter | REGION`` black on white, thin vertical bars
  between the groups, one line.
- French SIV: ``AB-123-CD`` black on white, blue EU band with "F" on the left and a
  blue department band on the right.

The augmentation helpers (perspective, blur, noise, brightness, JPEG) and
:func:`training_crop` make the recogniser's training crops: a plate on a car-body
background, cropped with the loose, jittered margins a detector gives.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from agent.frames import Image
from agent.reader.plate_text import LATIN_TO_ARABIC, canonicalize
from agent.reads import PlateFormat

FONT_DIR: Final = Path("/usr/share/fonts/truetype/dejavu")
TEXT_FONTS: Final = (
    "DejaVuSans-Bold.ttf",
    "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSans.ttf",
    "DejaVuSansCondensed.ttf",
)
"""Fonts for digits and Latin letters; every one also has the Arabic letters."""
FONT_ROOT: Final = FONT_DIR.parent
LATIN_FONTS: Final = (
    "liberation/LiberationSansNarrow-Bold.ttf",
    "liberation/LiberationSansNarrow-Regular.ttf",
    "liberation/LiberationSans-Bold.ttf",
    "noto/NotoSans-Bold.ttf",
    "noto/NotoSansDisplay-Bold.ttf",
    "noto/NotoSans-Regular.ttf",
)
"""Other faces for European plates' Latin text (no Arabic letters; paths under
:data:`FONT_ROOT`, Debian's fonts-liberation and fonts-noto-core): the shapes of ``0`` and
``O``, ``1`` and ``I``, ``U`` and ``J`` differ from DejaVu's, as national plate fonts'
do from one another (``agent.synth.europe.render_wide_plate``'s ``fonts``)."""

MA_LETTERS: Final = ("A", "B", "D", "H", "W", "T", "Y")
"""Moroccan series letters issued so far, transliterated (see agent.reader.plate_text)."""
SIV_LETTERS: Final = "ABCDEFGHJKLMNPQRSTVWXYZ"
"""Letters used on French SIV plates (no I, O, U)."""

BASE_W: Final = 520
BASE_H: Final = 110
_EU_BLUE: Final = (0, 51, 153)
_EU_YELLOW: Final = (255, 204, 0)

Gray = npt.NDArray[np.uint8]


class FontsMissingError(RuntimeError):
    """A font the renderer needs is not installed (the message names its Debian package)."""


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """A DejaVu face by file name, or another by its path under :data:`FONT_ROOT`."""
    return _face(str(FONT_ROOT / name if "/" in name else FONT_DIR / name), size)


@functools.lru_cache(maxsize=64)
def _face(path: str, size: int) -> ImageFont.FreeTypeFont:
    """The face at ``path`` (cached); a missing one names the Debian package to install."""
    if not Path(path).is_file():
        package = {"liberation": "fonts-liberation", "noto": "fonts-noto-core"}.get(
            Path(path).parent.name, "fonts-dejavu-extra"
        )
        raise FontsMissingError(f"font {path} not found (install {package})")
    return ImageFont.truetype(path, size)


def random_plate_text(rng: np.random.Generator, fmt: PlateFormat) -> str:
    """A random canonical plate text of format ``"MA"`` (``12345-B-6``) or ``"FR"`` (SIV)."""
    if fmt == "MA":
        n_digits = int(rng.choice([1, 2, 3, 4, 5], p=[0.05, 0.1, 0.2, 0.3, 0.35]))
        serial = int(rng.integers(10 ** (n_digits - 1), 10**n_digits))
        letter = MA_LETTERS[int(rng.integers(len(MA_LETTERS)))]
        region = int(rng.integers(1, 90))
        return f"{serial}-{letter}-{region}"
    if fmt == "FR":
        letters = [SIV_LETTERS[int(i)] for i in rng.integers(0, len(SIV_LETTERS), size=4)]
        number = int(rng.integers(1, 1000))
        return f"{letters[0]}{letters[1]}-{number:03d}-{letters[2]}{letters[3]}"
    raise ValueError(f"cannot generate plates of format {fmt!r}")


@functools.lru_cache(maxsize=4096)
def _char_mask(path: str, size: int, ch: str) -> Gray:
    """Ink mask of one character, ``2 x size`` tall, cropped to its ink columns (cached)."""
    if ch.isspace():  # a word gap, as wide as a narrow character
        blank = np.zeros((size * 2, round(size * 0.35)), np.uint8)
        blank.flags.writeable = False
        return blank
    font = _face(path, size)
    right = int(font.getbbox(ch)[2])
    canvas = PILImage.new("L", (right + 4, size * 2), 0)
    ImageDraw.Draw(canvas).text((2, 0), ch, font=font, fill=255)
    mask = np.asarray(canvas)
    xs = np.nonzero(mask.max(axis=0))[0]
    part = mask[:, xs[0] : xs[-1] + 1] if xs.size else mask[:, :1]
    part = np.ascontiguousarray(part, dtype=np.uint8)
    part.flags.writeable = False
    return part


def _text_image(text: str, font: ImageFont.FreeTypeFont, spacing: float) -> Gray:
    """Tight-cropped ink mask (255 = ink) of ``text``, characters spaced by ``spacing`` x size."""
    gap = round(spacing * float(font.size))
    parts = [_char_mask(str(font.path), int(font.size), ch) for ch in text]
    height = max(m.shape[0] for m in parts)
    cols: list[Gray] = []
    for part in parts:
        if cols:
            cols.append(np.zeros((height, gap), np.uint8))
        cols.append(part)
    row = np.concatenate(cols, axis=1)
    ys = np.nonzero(row.max(axis=1))[0]
    return np.ascontiguousarray(row[ys[0] : ys[-1] + 1], dtype=np.uint8)


def _fit(mask: Gray, height: int, max_width: int) -> Gray:
    """Scale an ink mask to ``height`` (or less wide if it would pass ``max_width``)."""
    h, w = mask.shape
    new_w = round(w * height / h)
    new_w = min(new_w, max_width)
    resized = cv2.resize(mask, (max(new_w, 1), height), interpolation=cv2.INTER_AREA)
    return np.asarray(resized, dtype=np.uint8)


def _paste_ink(canvas: npt.NDArray[np.uint8], mask: Gray, x: int, y: int, ink: int) -> None:
    h, w = mask.shape
    region = canvas[y : y + h, x : x + w]
    alpha = mask[: region.shape[0], : region.shape[1], None].astype(np.float32) / 255.0
    region[...] = (region * (1.0 - alpha) + ink * alpha).astype(np.uint8)


def _moroccan(text: str, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    serial, letter, region = text.split("-")
    paper = int(rng.integers(225, 256))
    ink = int(rng.integers(0, 50))
    canvas = np.full((BASE_H, BASE_W, 3), paper, np.uint8)
    font = _font(TEXT_FONTS[int(rng.integers(len(TEXT_FONTS)))], 96)
    spacing = float(rng.uniform(0.02, 0.12))
    char_h = int(rng.integers(60, 76))
    top = (BASE_H - char_h) // 2 + int(rng.integers(-3, 4))
    serial_m = _fit(_text_image(serial, font, spacing), char_h, 250)
    letter_font = _font(TEXT_FONTS[int(rng.integers(len(TEXT_FONTS)))], 96)
    letter_m = _fit(_text_image(LATIN_TO_ARABIC[letter], letter_font, 0), int(char_h * 0.8), 70)
    region_m = _fit(_text_image(region, font, spacing), char_h, 90)
    bar_w = int(rng.integers(3, 7))
    gap = int(rng.integers(12, 26))
    widths = [serial_m.shape[1], letter_m.shape[1], region_m.shape[1]]
    total = sum(widths) + 4 * gap + 2 * bar_w
    x = max((BASE_W - total) // 2 + int(rng.integers(-10, 11)), 8)
    bar_top, bar_bottom = int(BASE_H * 0.12), int(BASE_H * 0.88)
    for i, mask in enumerate((serial_m, letter_m, region_m)):
        y = top if i != 1 else top + (char_h - mask.shape[0]) // 2
        _paste_ink(canvas, mask, x, y, ink)
        x += mask.shape[1] + gap
        if i < 2:
            canvas[bar_top:bar_bottom, x : x + bar_w] = ink
            x += bar_w + gap
    border = int(rng.integers(2, 6))
    cv2.rectangle(canvas, (0, 0), (BASE_W - 1, BASE_H - 1), (ink, ink, ink), border)
    return canvas


def _eu_band(canvas: npt.NDArray[np.uint8], x0: int, width: int, country: str | None) -> None:
    canvas[:, x0 : x0 + width] = _EU_BLUE
    if country is None:
        return
    cx, cy, radius = x0 + width / 2, BASE_H * 0.32, width * 0.3
    for k in range(12):
        angle = 2 * np.pi * k / 12
        px, py = cx + radius * np.cos(angle), cy + radius * np.sin(angle)
        cv2.circle(canvas, (round(px), round(py)), 2, _EU_YELLOW, -1)
    pil = PILImage.fromarray(canvas)
    font = _font("DejaVuSans-Bold.ttf", 30)
    ImageDraw.Draw(pil).text(
        (x0 + width / 2, BASE_H * 0.78), country, font=font, fill="white", anchor="mm"
    )
    canvas[...] = np.asarray(pil)


@functools.lru_cache(maxsize=128)
def _band_image(width: int, country: str | None) -> npt.NDArray[np.uint8]:
    """The :func:`_eu_band` drawing of ``width`` x BASE_H (cached, read-only)."""
    band = np.zeros((BASE_H, width, 3), np.uint8)
    _eu_band(band, 0, width, country)
    band.flags.writeable = False
    return band


def _french(text: str, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    paper = int(rng.integers(225, 256))
    ink = int(rng.integers(0, 50))
    canvas = np.full((BASE_H, BASE_W, 3), paper, np.uint8)
    band = int(rng.integers(40, 50))
    _eu_band(canvas, 0, band, "F")
    if rng.random() < 0.85:
        _eu_band(canvas, BASE_W - band, band, None)
        right = BASE_W - band
    else:
        right = BASE_W
    font = _font(TEXT_FONTS[int(rng.integers(len(TEXT_FONTS)))], 96)
    char_h = int(rng.integers(62, 78))
    mask = _fit(_text_image(text, font, float(rng.uniform(0.02, 0.1))), char_h, right - band - 16)
    x = band + (right - band - mask.shape[1]) // 2 + int(rng.integers(-4, 5))
    y = (BASE_H - char_h) // 2 + int(rng.integers(-3, 4))
    _paste_ink(canvas, mask, max(x, band + 2), y, ink)
    cv2.rectangle(
        canvas, (0, 0), (BASE_W - 1, BASE_H - 1), (ink, ink, ink), int(rng.integers(1, 4))
    )
    return canvas


def render_plate(text: str, rng: np.random.Generator, height: int = 110) -> Image:
    """Draw the plate with canonical ``text`` (MA or FR SIV) as a BGR image ``height`` px tall.

    The width keeps the real 520:110 aspect ratio. Raises ``ValueError`` for a
    text that is neither a Moroccan nor a French SIV canonical plate.
    """
    canonical, fmt = canonicalize(text)
    if canonical != text or fmt not in ("MA", "FR") or (fmt == "FR" and text[0].isdigit()):
        raise ValueError(f"can only render canonical MA or French SIV plates, not {text!r}")
    rgb = _moroccan(text, rng) if fmt == "MA" else _french(text, rng)
    width = round(BASE_W * height / BASE_H)
    interp = cv2.INTER_AREA if height < BASE_H else cv2.INTER_LINEAR
    bgr = cv2.cvtColor(cv2.resize(rgb, (width, height), interpolation=interp), cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(bgr)


# ---------------------------------------------------------------- augmentation


def perspective_jitter(image: Image, rng: np.random.Generator, amount: float = 0.06) -> Image:
    """Move each corner by up to ``amount`` x the size, keeping the image size."""
    h, w = image.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = src + rng.uniform(-amount, amount, size=(4, 2)).astype(np.float32) * [w, h]
    matrix = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    out = cv2.warpPerspective(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(out)


def blur(image: Image, rng: np.random.Generator, max_sigma: float = 1.2) -> Image:
    """Gaussian blur, or a short horizontal motion blur, of random strength."""
    if rng.random() < 0.3:
        length = int(rng.integers(2, 6))
        kernel = np.full((1, length), 1.0 / length, np.float32)
        return np.ascontiguousarray(cv2.filter2D(image, -1, kernel))
    sigma = float(rng.uniform(0.01, max_sigma))
    return np.ascontiguousarray(cv2.GaussianBlur(image, (0, 0), sigma))


def add_noise(image: Image, rng: np.random.Generator, max_sigma: float = 12.0) -> Image:
    """Additive Gaussian sensor noise of random strength."""
    sigma = float(rng.uniform(0.0, max_sigma))
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    out: Image = np.clip(noisy, 0, 255).astype(np.uint8)
    return out


def adjust_brightness(image: Image, rng: np.random.Generator) -> Image:
    """Random contrast (0.5-1.2) and brightness (-60..+40) change."""
    gain = float(rng.uniform(0.5, 1.2))
    bias = float(rng.uniform(-60.0, 40.0))
    return np.asarray(cv2.convertScaleAbs(image, alpha=gain, beta=bias), dtype=np.uint8)


def jpeg_roundtrip(image: Image, rng: np.random.Generator, min_quality: int = 25) -> Image:
    """Encode and decode as JPEG at a random quality (video-codec-like artefacts)."""
    return jpeg_at(image, int(rng.integers(min_quality, 96)))


def jpeg_at(image: Image, quality: int) -> Image:
    """``image`` encoded and decoded as JPEG at ``quality`` (unchanged if encoding fails)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return image
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR))


def clean_degrade(image: Image, rng: np.random.Generator) -> Image:
    """The clean renderer's light degradations: blur, brightness, noise, JPEG (each maybe)."""
    out = image
    if rng.random() < 0.7:
        out = blur(out, rng)
    if rng.random() < 0.7:
        out = adjust_brightness(out, rng)
    if rng.random() < 0.6:
        out = add_noise(out, rng)
    if rng.random() < 0.6:
        out = jpeg_roundtrip(out, rng)
    return out


def training_crop(
    text: str, rng: np.random.Generator, out_height: int = 32, out_width: int = 128
) -> Gray:
    """A grayscale ``out_height x out_width`` recogniser training crop of plate ``text``.

    The plate is drawn small (18-70 px tall), set on a car-coloured background,
    warped, cropped with detector-like margins (it may lose a few percent on a
    side or carry extra background), then blurred, noised, relit and JPEG'd.
    """
    plate_h = int(rng.integers(18, 70))
    plate = render_plate(text, rng, height=plate_h)
    ph, pw = plate.shape[:2]
    pad_y, pad_x = ph, pw // 3
    bg_colour = rng.integers(0, 256, size=3)
    canvas = np.empty((ph + 2 * pad_y, pw + 2 * pad_x, 3), np.uint8)
    canvas[...] = bg_colour.astype(np.uint8)
    canvas[pad_y : pad_y + ph, pad_x : pad_x + pw] = plate
    if rng.random() < 0.8:
        canvas = perspective_jitter(canvas, rng, amount=0.04)
    left = pad_x - round(pw * rng.uniform(-0.05, 0.12))
    right = pad_x + pw + round(pw * rng.uniform(-0.05, 0.12))
    top = pad_y - round(ph * rng.uniform(-0.08, 0.3))
    bottom = pad_y + ph + round(ph * rng.uniform(-0.08, 0.3))
    crop = canvas[top:bottom, left:right]
    crop = clean_degrade(crop, rng)
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    resized = cv2.resize(gray, (out_width, out_height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized)
