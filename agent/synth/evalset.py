"""Held-out synthetic evaluation folders for ``raqib eval`` (seeded, written outside the repo).

    python -m agent.synth.evalset OUT [--n 500] [--seed 424242]

writes three folders, each with PNG images and a ``manifest.csv``
(``image,plate_text,x,y,w,h``):

- ``OUT/crops-clean``: clean plate crops at their natural aspect, with the
  runtime's margins (:func:`agent.synth.augment.clean_plate_crop`: the v1
  renderer style);
- ``OUT/crops-field``: field-like crops at their natural aspect
  (:func:`agent.synth.augment.field_plate_crop`, some deliberately illegible);

Both crop sets draw plates with :func:`agent.synth.augment.random_training_plate`
(the training mix: Moroccan one- and two-line, motorcycle, WW, W18, state,
diplomatic, French SIV and FNI, other EU plates). Crops are not squeezed: a
two-line crop is narrower than 2.2:1 so the runtime reads it as two-line
(``agent.reader.layout.maybe_two_line``), a one-line crop wider than 3.1:1.
``plate_text`` is the canonical text.
- ``OUT/scenes``: 1280 x 720 street scenes with one to three plates and their
  boxes (:func:`agent.synth.scenes.labelled_street_scene`), for detection and
  end-to-end reading.

The default seed is not used by any training script.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

from agent.synth.augment import clean_plate_crop, field_plate_crop, random_training_plate
from agent.synth.scenes import labelled_street_scene

DEFAULT_SEED = 424242


def _write(folder: Path, rows: list[list[object]]) -> None:
    with (folder / "manifest.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "plate_text", "x", "y", "w", "h"])
        writer.writerows(rows)


def write_eval_sets(out: Path, n: int = 500, seed: int = DEFAULT_SEED) -> list[Path]:
    """The three folders above, ``n`` images each; returns their paths."""
    rng = np.random.default_rng(seed)
    folders = {name: out / name for name in ("crops-clean", "crops-field", "scenes")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    rows: list[list[object]] = []
    for i in range(n):
        text, two_line = random_training_plate(rng)
        crop = clean_plate_crop(text, rng, two_line=two_line)
        cv2.imwrite(str(folders["crops-clean"] / f"{i:04d}.png"), crop)
        rows.append([f"{i:04d}.png", text, "", "", "", ""])
    _write(folders["crops-clean"], rows)
    rows = []
    for i in range(n):
        text, two_line = random_training_plate(rng)
        crop = field_plate_crop(text, rng, two_line=two_line)
        cv2.imwrite(str(folders["crops-field"] / f"{i:04d}.png"), crop)
        rows.append([f"{i:04d}.png", text, "", "", "", ""])
    _write(folders["crops-field"], rows)
    rows = []
    for i in range(n):
        frame, boxes, texts = labelled_street_scene(rng)
        cv2.imwrite(str(folders["scenes"] / f"{i:04d}.png"), frame)
        for (x, y, w, h), text in zip(boxes, texts, strict=True):
            rows.append([f"{i:04d}.png", text, round(x), round(y), round(w), round(h)])
    _write(folders["scenes"], rows)
    return list(folders.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write held-out synthetic raqib-eval folders")
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    for folder in write_eval_sets(args.out, args.n, args.seed):
        sys.stdout.write(f"{folder}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
