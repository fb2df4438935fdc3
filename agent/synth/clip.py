"""A synthetic street clip with ground truth, for demos, benchmarks and tests.

A fixed street scene (sky, buildings, pavement, two-lane road) and cars, drawn
as simple rear views, crossing the frame one lane each, every car carrying a
Moroccan or French plate. At most two cars are on screen at once and the lanes
do not overlap, so every plate box in the truth is fully visible. Everything is
drawn from one seed: the same seed gives the same plates, path and pixels
(the H.264 bytes may differ between libx264 builds).

Truth JSON (beside the MP4)::

    {"fps": 25, "width": 1280, "height": 720, "frames": N, "seed": S,
     "vehicles": [{"plate": "12345-B-6", "format": "MA",
                   "first_frame": f0, "last_frame": f1,
                   "boxes": {"<frame>": [x, y, w, h], ...}}]}

``boxes`` has one entry per frame in which the whole plate is inside the
picture; ``first_frame``/``last_frame`` are the first and last of those.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from agent.frames import Image
from agent.reads import PlateFormat
from agent.synth.plates import random_plate_text, render_plate

WIDTH, HEIGHT, FPS = 1280, 720, 25

_CAR_COLOURS = (  # BGR: no white cars, a plate on a white body is a later issue
    (40, 40, 170),
    (150, 90, 30),
    (60, 60, 60),
    (25, 25, 25),
    (165, 165, 160),
    (60, 120, 50),
    (140, 170, 190),
    (30, 110, 200),
)


@dataclass
class Vehicle:
    plate: str
    format: PlateFormat
    sprite: Image
    mask: np.ndarray[Any, np.dtype[np.bool_]]
    plate_box: tuple[int, int, int, int]  # within the sprite
    start: int
    x0: float
    speed: float  # px per frame, signed
    y: int
    boxes: dict[int, list[int]] = field(default_factory=dict)

    def x_at(self, frame: int) -> int:
        return round(self.x0 + self.speed * (frame - self.start))


def _background(rng: np.random.Generator) -> Image:
    img = np.full((HEIGHT, WIDTH, 3), 95, np.uint8)
    sky = np.linspace(235, 190, 260)[:, None]
    img[:260, :, 0] = np.clip(sky, 0, 255).astype(np.uint8)
    img[:260, :, 1] = np.clip(sky - 25, 0, 255).astype(np.uint8)
    img[:260, :, 2] = np.clip(sky - 70, 0, 255).astype(np.uint8)
    x = 0
    while x < WIDTH:
        w = int(rng.integers(120, 260))
        top = int(rng.integers(40, 150))
        colour = tuple(int(c) for c in rng.integers(70, 160, size=3))
        cv2.rectangle(img, (x, top), (x + w, 290), colour, -1)
        for wy in range(top + 15, 270, 38):
            for wx in range(x + 12, x + w - 25, 34):
                cv2.rectangle(img, (wx, wy), (wx + 18, wy + 22), (90, 70, 50), -1)
        x += w + int(rng.integers(0, 20))
    img[290:330] = (150, 150, 145)  # pavement
    img[330:336] = (110, 110, 110)  # kerb
    road = rng.normal(78, 4, size=(HEIGHT - 336, WIDTH)).clip(0, 255).astype(np.uint8)
    img[336:] = road[:, :, None]
    for dx in range(0, WIDTH, 160):  # lane dashes between the two lanes
        cv2.rectangle(img, (dx + 20, 500), (dx + 100, 508), (225, 225, 225), -1)
    return img


def _car_sprite(
    plate_img: Image,
    rng: np.random.Generator,
    colour: tuple[int, int, int] | None = None,
) -> tuple[Image, np.ndarray[Any, np.dtype[np.bool_]], tuple[int, int, int, int]]:
    """A simple car rear view around ``plate_img``; returns image, mask and plate box.

    ``colour`` (BGR) is drawn from the clip's palette when not given.
    """
    ph, pw = plate_img.shape[:2]
    cw = int(pw * rng.uniform(2.6, 3.0))
    ch = int(cw * rng.uniform(0.62, 0.72))
    if colour is None:
        colour = _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))]
    img = np.zeros((ch, cw, 3), np.uint8)
    mask = np.zeros((ch, cw), np.uint8)
    roof_top, body_top, body_bottom = int(ch * 0.05), int(ch * 0.38), int(ch * 0.9)
    roof = np.array(
        [[cw * 0.2, body_top], [cw * 0.28, roof_top], [cw * 0.72, roof_top], [cw * 0.8, body_top]],
        np.int32,
    )
    cv2.fillConvexPoly(img, roof, colour)
    cv2.fillConvexPoly(mask, roof, 255)
    glass = np.array(
        [
            [cw * 0.25, body_top - 4],
            [cw * 0.31, roof_top + 8],
            [cw * 0.69, roof_top + 8],
            [cw * 0.75, body_top - 4],
        ],
        np.int32,
    )
    cv2.fillConvexPoly(img, glass, (70, 55, 45))
    for wx in (int(cw * 0.08), int(cw * 0.78)):  # wheels
        cv2.rectangle(img, (wx, body_bottom - 10), (wx + int(cw * 0.14), ch - 1), (20, 20, 20), -1)
        cv2.rectangle(mask, (wx, body_bottom - 10), (wx + int(cw * 0.14), ch - 1), 255, -1)
    cv2.rectangle(img, (0, body_top), (cw - 1, body_bottom), colour, -1)
    cv2.rectangle(mask, (0, body_top), (cw - 1, body_bottom), 255, -1)
    light_h = int((body_bottom - body_top) * 0.22)
    cv2.rectangle(
        img, (6, body_top + 8), (int(cw * 0.2), body_top + 8 + light_h), (30, 30, 200), -1
    )
    cv2.rectangle(
        img, (cw - int(cw * 0.2), body_top + 8), (cw - 7, body_top + 8 + light_h), (30, 30, 200), -1
    )
    bumper_top = body_bottom - int((body_bottom - body_top) * 0.25)
    cv2.rectangle(img, (0, bumper_top), (cw - 1, body_bottom), (35, 35, 35), -1)
    px = (cw - pw) // 2
    py = bumper_top - ph - int(ph * 0.15)
    pad = max(6, ph // 4)
    cv2.rectangle(img, (px - pad, py - pad), (px + pw + pad, py + ph + pad), (30, 30, 30), -1)
    img[py : py + ph, px : px + pw] = plate_img
    return img, mask.astype(bool), (px, py, pw, ph)


def _vehicles(rng: np.random.Generator, n: int, interval: int) -> list[Vehicle]:
    lanes = (  # (bottom y of the car, plate height range, direction)
        (495, (26, 30), -1),
        (712, (36, 42), 1),
    )
    formats: list[PlateFormat] = ["MA", "FR", "MA", "MA", "FR", "MA", "FR", "MA"]
    out = []
    for i in range(n):
        bottom, (h_lo, h_hi), direction = lanes[i % 2]
        fmt = formats[i % len(formats)]
        text = random_plate_text(rng, fmt)
        plate = render_plate(text, rng, height=int(rng.integers(h_lo, h_hi + 1)))
        sprite, mask, box = _car_sprite(plate, rng)
        cw = sprite.shape[1]
        frames_on_screen = interval * 2 - 6
        speed = (WIDTH + cw) / frames_on_screen * direction
        x0 = -cw if direction > 0 else WIDTH
        vehicle = Vehicle(
            text, fmt, sprite, mask, box, 4 + i * interval, x0, speed, bottom - sprite.shape[0]
        )
        out.append(vehicle)
    return out


def _draw(frame: Image, v: Vehicle, index: int) -> tuple[int, int, int, int] | None:
    """Draw ``v`` at frame ``index``; its bounding box in the frame, or None if off screen."""
    x = v.x_at(index)
    h, w = v.sprite.shape[:2]
    x_a, x_b = max(x, 0), min(x + w, WIDTH)
    if x_a >= x_b:
        return None
    sx_a, sx_b = x_a - x, x_b - x
    region = frame[v.y : v.y + h, x_a:x_b]
    m = v.mask[:, sx_a:sx_b]
    region[m] = v.sprite[:, sx_a:sx_b][m]
    return (x, v.y, w, h)


def _overlaps(a: list[int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _record_visible(
    vehicles: list[Vehicle], drawn: list[tuple[int, int, int, int] | None], index: int
) -> None:
    """Record each plate box that is wholly inside the frame and not hidden by a nearer car."""
    for k, v in enumerate(vehicles):
        if drawn[k] is None:
            continue
        px, py, pw, ph = v.plate_box
        x = v.x_at(index)
        box = [x + px, v.y + py, pw, ph]
        if box[0] < 0 or box[0] + pw > WIDTH:
            continue
        if any(d is not None and _overlaps(box, d) for d in drawn[k + 1 :]):
            continue
        v.boxes[index] = box


def render_clip(
    mp4_path: Path,
    truth_path: Path,
    *,
    seed: int = 7,
    n_vehicles: int = 8,
    interval: int = 36,
    crf: int = 28,
) -> dict[str, Any]:
    """Render the clip to ``mp4_path`` (H.264, yuv420p) and its truth to ``truth_path``.

    Returns the truth mapping. Vehicle ``i`` enters at frame ``4 + i * interval``
    and is on screen for ``2 * interval - 6`` frames, so at most two cars show.
    """
    rng = np.random.default_rng(seed)
    background = _background(rng)
    vehicles = _vehicles(rng, n_vehicles, interval)
    depth_order = sorted(vehicles, key=lambda v: v.y + v.sprite.shape[0])  # far lane first
    n_frames = 4 + (n_vehicles + 1) * interval + 4
    mp4_path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(mp4_path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium", "threads": "1"}
        frame = np.empty_like(background)
        for index in range(n_frames):
            np.copyto(frame, background)
            drawn = [_draw(frame, v, index) for v in depth_order]
            _record_visible(depth_order, drawn, index)
            video_frame = av.VideoFrame.from_ndarray(frame, format="bgr24")
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
    truth: dict[str, Any] = {
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "frames": n_frames,
        "seed": seed,
        "vehicles": [
            {
                "plate": v.plate,
                "format": v.format,
                "first_frame": min(v.boxes),
                "last_frame": max(v.boxes),
                "boxes": {str(k): b for k, b in sorted(v.boxes.items())},
            }
            for v in vehicles
            if v.boxes
        ],
    }
    truth_path.write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return truth


def write_watchlist(path: Path, truth: dict[str, Any], seed: int = 7) -> list[str]:
    """A demo watchlist: three of the clip's plates (stolen/wanted) and three that are not in it.

    Returns the plates from the clip that were listed.
    """
    rng = np.random.default_rng(seed + 1)
    plates = [v["plate"] for v in truth["vehicles"]]
    picked = [plates[0], plates[4], plates[5]] if len(plates) >= 6 else plates[:3]
    absent: list[str] = []
    while len(absent) < 3:
        text = random_plate_text(rng, "MA" if len(absent) != 1 else "FR")
        if text not in plates:
            absent.append(text)
    rows = [
        (picked[0], "stolen", "DGSN-2026-0412", 1),
        (picked[1], "wanted", "DGSN-2026-0977", 1),
        (picked[2], "stolen", "DGSN-2026-1187", 2),
        (absent[0], "stolen", "DGSN-2026-0150", 2),
        (absent[1], "wanted", "INS-FR-2026-2041", 3),
        (absent[2], "stolen", "DGSN-2026-1203", 2),
    ]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["plate", "reason", "case_ref", "priority"])
        writer.writerows(rows)
    return picked
