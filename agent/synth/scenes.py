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
    texts: list[str] = []
    frame = _background(rng)
    frame = np.ascontiguousarray(np.roll(frame, int(rng.integers(0, WIDTH)), axis=1))
    boxes: list[BoxF] = []
    n_cars = int(rng.integers(1, 4))
    slots = sorted(rng.permutation(3)[:n_cars])
    for k, slot in enumerate(slots):
        plate_h = int(rng.integers(12, 42 if k == 0 else 30))
        text, two_line = random_training_plate(rng)
        colour = _BODY_COLOURS[int(rng.integers(len(_BODY_COLOURS)))]
        if two_line:  # a square plate on a car sized for a one-line plate of this height
            plate = render_any_plate(text, rng, height=round(plate_h * 1.8), two_line=True)
            sprite, mask, (px, py, pw, ph) = _square_plate_sprite(plate, rng, colour)
        else:
            plate = render_any_plate(text, rng, height=plate_h)
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
    return _look(frame, rng), boxes, texts


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
    image: Image, rng: np.random.Generator, n: int = 1, avoid: list[BoxF] | None = None
) -> tuple[Image, list[BoxF]]:
    """``image`` (copied) with ``n`` synthetic plates pasted where they overlap no ``avoid`` box."""
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
