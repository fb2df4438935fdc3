"""Synthetic street scenes with plate boxes, for training the plate detector (seeded).

Two kinds:

- :func:`street_scene`: a drawn street (the sample clip's style, with random
  buildings) and one to three cars of any colour, white and silver included,
  each with a plate from :func:`agent.synth.augment.random_training_plate`
  drawn by :func:`agent.synth.augment.render_any_plate` (two-line Moroccan and
  motorcycle plates, special series, French and other EU plates included);
  day, dusk, night (headlights, low light) or IR looks, blur, noise and codec
  artefacts;
- :func:`paste_plates`: synthetic plates pasted, warped, into a real
  photograph (on a dark recess or straight on the body), so the detector sees
  plate-like text in real clutter.

Boxes are ``(x, y, w, h)`` in pixels of the returned image.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from agent.frames import Image
from agent.synth.augment import (
    codec,
    ir_night,
    low_light,
    motion_or_defocus,
    random_training_plate,
    render_any_plate,
)
from agent.synth.clip import HEIGHT, WIDTH, _background, _car_sprite

BoxF = tuple[float, float, float, float]

_BODY_COLOURS: tuple[tuple[int, int, int], ...] = (
    (245, 245, 245),
    (225, 228, 230),
    (190, 190, 188),
    (40, 40, 170),
    (150, 90, 30),
    (60, 60, 60),
    (25, 25, 25),
    (60, 120, 50),
    (140, 170, 190),
    (30, 110, 200),
    (20, 20, 110),
)


def _look(frame: Image, rng: np.random.Generator) -> Image:
    r = rng.random()
    if r < 0.15:
        frame = low_light(frame, rng)
    elif r < 0.25:
        frame = ir_night(frame, rng)
    elif r < 0.6:
        gain, bias = float(rng.uniform(0.6, 1.3)), float(rng.uniform(-40, 40))
        frame = np.asarray(cv2.convertScaleAbs(frame, alpha=gain, beta=bias), np.uint8)
    if rng.random() < 0.3:
        frame = motion_or_defocus(frame, rng)
    if rng.random() < 0.5:
        frame = codec(frame, rng)
    return frame


def street_scene(rng: np.random.Generator) -> tuple[Image, list[BoxF]]:
    """A 1280 x 720 BGR street frame with one to three cars and their plate boxes."""
    frame, boxes, _texts = labelled_street_scene(rng)
    return frame, boxes


def labelled_street_scene(rng: np.random.Generator) -> tuple[Image, list[BoxF], list[str]]:
    """Same as :func:`street_scene` (same pixels for the same seed), with the plate texts."""
    frame, boxes, texts = _street(rng, (12, 42, 30), recolour=False)
    return _look(frame, rng), boxes, texts


def varied_street_scene(rng: np.random.Generator) -> tuple[Image, list[BoxF]]:
    """A street scene for the detector with what :func:`street_scene` lacks: far
    plates (from 6 px tall, about 25 px wide) and yellow and black plates
    (:func:`recolour_plate`). Colour casts and dashcam night looks
    (:func:`varied_look`) are left to the caller: they are cheaper on a crop."""
    frame, boxes, _texts = _street(rng, (6, 42, 30), recolour=True)
    return _look(frame, rng), boxes


def far_plate_scene(rng: np.random.Generator, *, night: bool) -> tuple[Image, list[BoxF]]:
    """A street scene whose plates are all far (6-11 px tall, about 25-50 px wide in
    the 1280 x 720 frame), by day or in a dashcam night; for measuring, not training."""
    frame, boxes, _texts = _street(rng, (6, 12, 12), recolour=True)
    return (night_drive(frame, rng) if night else codec(frame, rng)), boxes


def near_plate_scene(
    rng: np.random.Generator, share: float, size: tuple[int, int] = (640, 480)
) -> tuple[Image, BoxF, str]:
    """A body camera beside a car: the plate ``share`` of the ``size`` (width, height) photo's
    width, on the car's body below a darker band (the bumper's recess), with the codec's
    artefacts; the plate's box and text. For measuring the near pass, not training."""
    width, height = size
    text, two_line = random_training_plate(rng)
    plate = render_any_plate(text, rng, height=60, two_line=two_line)
    pw = round(share * width)
    ph = min(round(plate.shape[0] * pw / plate.shape[1]), height - 20)
    sized = np.asarray(cv2.resize(plate, (pw, ph), interpolation=cv2.INTER_AREA), np.uint8)
    body = _BODY_COLOURS[int(rng.integers(len(_BODY_COLOURS)))]
    frame = np.empty((height, width, 3), np.uint8)
    frame[...] = body
    top = int(rng.integers(0, max(1, height // 3)))
    frame[:top] = tuple(int(v * 0.4) for v in body)
    x = int(rng.integers(0, width - pw + 1))
    y = int(rng.integers(top, max(top + 1, height - ph + 1)))
    frame[y : y + ph, x : x + pw] = sized[: height - y]
    return codec(frame, rng), (float(x), float(y), float(pw), float(min(ph, height - y))), text


def _street(
    rng: np.random.Generator, heights: tuple[int, int, int], *, recolour: bool
) -> tuple[Image, list[BoxF], list[str]]:
    """Drawn street with cars; plate heights from ``heights[0]`` to ``heights[1]``
    (first car) or ``heights[2]`` (others). No look applied yet."""
    texts: list[str] = []
    frame = _background(rng)
    frame = np.ascontiguousarray(np.roll(frame, int(rng.integers(0, WIDTH)), axis=1))
    boxes: list[BoxF] = []
    n_cars = int(rng.integers(1, 4))
    slots = sorted(rng.permutation(3)[:n_cars])
    for k, slot in enumerate(slots):
        plate_h = int(rng.integers(heights[0], heights[1] if k == 0 else heights[2]))
        text, two_line = random_training_plate(rng)
        colour = _BODY_COLOURS[int(rng.integers(len(_BODY_COLOURS)))]
        if two_line:  # a square plate on a car sized for a one-line plate of this height
            plate = render_any_plate(text, rng, height=round(plate_h * 1.8), two_line=True)
            sprite, mask, (px, py, pw, ph) = _square_plate_sprite(plate, rng, colour)
        else:
            plate = render_any_plate(text, rng, height=plate_h)
            if recolour:
                plate = recolour_plate(plate, rng)
            sprite, mask, (px, py, pw, ph) = _car_sprite(plate, rng, colour)
        sh, sw = sprite.shape[:2]
        if sw > WIDTH * 0.6 or sh > HEIGHT - 200:
            continue
        x = int(slot * WIDTH / 3 + rng.integers(0, max(1, WIDTH // 3 - sw // 2)))
        x = min(x, WIDTH - sw)
        y = int(rng.integers(200, HEIGHT - sh + 1))
        region = frame[y : y + sh, x : x + sw]
        region[mask] = sprite[mask]
        boxes.append((float(x + px), float(y + py), float(pw), float(ph)))
        texts.append(text)
    return frame, boxes, texts


def _square_plate_sprite(
    plate: Image, rng: np.random.Generator, colour: tuple[int, int, int]
) -> tuple[Image, npt.NDArray[np.bool_], tuple[int, int, int, int]]:
    """:func:`_car_sprite` around a two-line plate: the car is sized for a one-line
    plate as wide as 2.2 x the square one, the plate centred in that place."""
    ph, pw = plate.shape[:2]
    slot_w = round(pw * 2.2)
    slot = np.empty((ph, slot_w, 3), np.uint8)
    slot[...] = colour
    sprite, mask, (sx, sy, _sw, _sh) = _car_sprite(slot, rng, colour)
    px = sx + (slot_w - pw) // 2
    sprite[sy : sy + ph, px : px + pw] = plate
    return sprite, mask, (px, sy, pw, ph)


def paste_plates(
    image: Image,
    rng: np.random.Generator,
    n: int = 1,
    avoid: list[BoxF] | None = None,
    *,
    recolour: bool = False,
) -> tuple[Image, list[BoxF]]:
    """``image`` (copied) with ``n`` synthetic plates pasted where they overlap no ``avoid`` box
    (with ``recolour``, some yellow or black: :func:`recolour_plate`)."""
    out = image.copy()
    h, w = out.shape[:2]
    taken = list(avoid or [])
    added: list[BoxF] = []
    for _ in range(n):
        text, two_line = random_training_plate(rng)
        plate_w = int(w * rng.uniform(0.08, 0.35) * (0.4 if two_line else 1.0))
        aspect = rng.uniform(0.65, 0.9) if two_line else rng.uniform(0.18, 0.3)
        plate_h = max(8, round(plate_w * aspect))
        plate = render_any_plate(text, rng, height=plate_h, two_line=two_line)
        if recolour:
            plate = recolour_plate(plate, rng)
        plate = np.asarray(
            cv2.resize(plate, (plate_w, plate_h), interpolation=cv2.INTER_AREA), np.uint8
        )
        x = int(rng.integers(0, max(1, w - plate_w)))
        y = int(rng.integers(0, max(1, h - plate_h)))
        box = (float(x), float(y), float(plate_w), float(plate_h))
        if any(_overlap(box, t) for t in taken) or x + plate_w > w or y + plate_h > h:
            continue
        if rng.random() < 0.5:  # dark recess around the plate
            pad = max(2, plate_h // 5)
            cv2.rectangle(
                out, (x - pad, y - pad), (x + plate_w + pad, y + plate_h + pad), (25, 25, 25), -1
            )
        shade = rng.uniform(0.5, 1.1)
        out[y : y + plate_h, x : x + plate_w] = np.clip(plate * shade, 0, 255).astype(np.uint8)
        taken.append(box)
        added.append(box)
    return out, added


def _overlap(a: BoxF, b: BoxF) -> bool:
    margin = 0.5
    return (
        a[0] < b[0] + b[2] * (1 + margin)
        and b[0] < a[0] + a[2] * (1 + margin)
        and a[1] < b[1] + b[3] * (1 + margin)
        and b[1] < a[1] + a[3] * (1 + margin)
    )


# ---------------------------------------------------------------- detector looks


def recolour_plate(plate: Image, rng: np.random.Generator) -> Image:
    """A rendered plate (dark ink on white), sometimes recoloured: one in five
    yellow (French FNI rear, Dutch, British rear), one in ten black with silver
    characters (French classic); blue EU bands are kept. Else ``plate`` itself."""
    r = rng.random()
    if r >= 0.3:
        return plate
    if r < 0.2:
        paper = np.array(
            [rng.uniform(0, 70), rng.uniform(170, 225), rng.uniform(215, 255)], np.float32
        )
        return yellow_plate(plate, paper)
    return black_plate(plate, float(rng.uniform(170, 235)))


def yellow_plate(plate: Image, paper: npt.NDArray[np.float32]) -> Image:
    """``plate`` (dark ink on a light paper) on a yellow ``paper`` (BGR), its ink as dark
    as it was and its blue EU band kept: a French FNI rear plate, a Dutch or British one.
    Also how ``models/realdata.py`` recolours real plates for its proxy sets."""
    lightness, band = _lightness(plate)
    recoloured: Image = np.clip(lightness[:, :, None] * paper, 0, 255).astype(np.uint8)
    recoloured[band] = plate[band]
    return recoloured


def black_plate(plate: Image, silver: float) -> Image:
    """``plate`` as a classic black plate: its ink turned ``silver`` (grey level) on black
    and its blue EU band painted over (classic plates have none)."""
    lightness, _band = _lightness(plate)
    out = np.repeat((15 + (1 - lightness) * silver)[:, :, None], 3, axis=2)
    recoloured: Image = np.clip(out, 0, 255).astype(np.uint8)
    return recoloured


def _lightness(plate: Image) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Each pixel's grey over the paper's (its 90th percentile), 0 (ink) to 1 (paper), and
    the blue EU band's pixels (blue well above red)."""
    gray = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY).astype(np.float32)
    band = plate[:, :, 0].astype(np.int16) - plate[:, :, 2].astype(np.int16) > 40
    paper = max(float(np.percentile(gray, 90)), 1.0)
    return np.clip(gray / paper, 0, 1), band


def colour_cast(image: Image, rng: np.random.Generator) -> Image:
    """White balance gone wrong (sodium lamps, dusk, a dashcam's magenta tint):
    random channel gains, or one time in six no colour at all."""
    if rng.random() < 1 / 6:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return np.ascontiguousarray(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    gains = rng.uniform(0.6, 1.35, size=3).astype(np.float32)
    out: Image = np.clip(image.astype(np.float32) * gains, 0, 255).astype(np.uint8)
    return out


def night_drive(image: Image, rng: np.random.Generator) -> Image:
    """A dashcam at night: dark gamma (lit plates and lamps stay bright), a warm or
    magenta cast, blooming around bright lights, sensor noise, sometimes motion blur."""
    gamma, gain = float(rng.uniform(1.6, 2.8)), float(rng.uniform(0.8, 1.4))
    cast = np.array([rng.uniform(0.55, 0.95), rng.uniform(0.5, 0.85), 1.0], np.float32)
    levels = (np.arange(256, dtype=np.float32) / 255.0) ** gamma * gain
    lut = np.clip(levels[:, None] * cast * 255.0, 0, 255).astype(np.uint8)
    dark = np.dstack([cv2.LUT(image[:, :, c], lut[:, c]) for c in range(3)])
    h, w = image.shape[:2]
    small = cv2.resize(dark, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    bright = np.clip(small.max(axis=2).astype(np.float32) / 255.0 - 0.8, 0, None)
    bloom = cv2.GaussianBlur(bright, (0, 0), max(0.5, w / 4 / float(rng.uniform(60, 200))))
    bloom = cv2.resize(bloom, (w, h), interpolation=cv2.INTER_LINEAR)
    glow = np.array([0.9, 0.8, 1.2], np.float32) * float(rng.uniform(0.4, 1.6)) * 255.0
    noise = rng.standard_normal(size=image.shape, dtype=np.float32)
    f = dark + bloom[:, :, None] * glow + noise * float(rng.uniform(1.0, 8.0))
    out: Image = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        out = motion_or_defocus(out, rng)
    return out


def varied_look(image: Image, rng: np.random.Generator) -> Image:
    """Half the time a colour cast, one time in eight a dashcam night (either may add
    to the other); for the detector's training samples, real or drawn."""
    if rng.random() < 0.5:
        image = colour_cast(image, rng)
    if rng.random() < 1 / 8:
        image = night_drive(image, rng)
    return image
