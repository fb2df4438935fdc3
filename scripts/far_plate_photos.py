"""Real plates made far: a ``raqib eval`` folder of 1280 x 720 frames, each holding one
photo of a held-out folder shrunk so that its plate is 20-40 px wide, pasted over another
photo of the same folder stretched to the frame (whose own plate is not labelled).

Why: no real set labels plates this small, and the synthetic far plates the detector card
measured (drawn streets) were found far more often than real ones (models/detector.md,
"Far plates in photos"). The plates' pixels stay real, shrunk by area interpolation as a
camera's optics and sensor would; the pasted photo's edge is the artefact.

    python scripts/far_plate_photos.py /tmp/val/moroccan-detection-valid /tmp/far/ma --seed 2
    raqib eval /tmp/far/ma
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

FRAME_W, FRAME_H = 1280, 720
PLATE_WIDTHS = (20.0, 40.0)


def far_frames(
    source: Path, out: Path, seed: int, widths: tuple[float, float] = PLATE_WIDTHS
) -> int:
    """Write the frames and their ``manifest.csv`` into ``out``; returns how many."""
    rows: dict[str, list[dict[str, str]]] = {}
    with (source / "manifest.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("w"):
                rows.setdefault(row["image"], []).append(row)
    images = sorted(rows)
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    written: list[list[object]] = []
    for k, name in enumerate(images):
        if len(rows[name]) != 1:
            continue  # one labelled plate per photo: the others would be far but unlabelled
        row = rows[name][0]
        photo = cv2.imread(str(source / name))
        background = cv2.imread(str(source / images[(k + 7) % len(images)]))
        if photo is None or background is None:
            raise SystemExit(f"cannot read {name} or its background")
        frame = cv2.resize(background, (FRAME_W, FRAME_H), interpolation=cv2.INTER_AREA)
        x, y, w, h = (float(row[c]) for c in "xywh")
        scale = rng.uniform(*widths) / w
        sw, sh = max(1, round(photo.shape[1] * scale)), max(1, round(photo.shape[0] * scale))
        if sw > FRAME_W or sh > FRAME_H:
            continue
        small = cv2.resize(photo, (sw, sh), interpolation=cv2.INTER_AREA)
        ox = int(rng.integers(0, FRAME_W - sw + 1))
        oy = int(rng.integers(min(FRAME_H // 3, FRAME_H - sh), FRAME_H - sh + 1))
        frame[oy : oy + sh, ox : ox + sw] = small
        file = f"{k:04d}.png"
        cv2.imwrite(str(out / file), frame)
        box = (ox + x * scale, oy + y * scale, w * scale, h * scale)
        written.append([file, row["plate_text"], *(round(v, 1) for v in box)])
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "plate_text", "x", "y", "w", "h"])
        writer.writerows(written)
    return len(written)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a raqib eval folder of labelled photos")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--widths", type=float, nargs=2, default=PLATE_WIDTHS, help="plate widths drawn, px"
    )
    args = parser.parse_args()
    count = far_frames(args.source, args.out, args.seed, tuple(args.widths))
    print(f"{count} frames in {args.out}")


if __name__ == "__main__":
    main()
