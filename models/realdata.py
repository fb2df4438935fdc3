"""The real labelled photographs in ``../shared/datasets`` (read in place, never copied).

Splits are fixed and documented here so every script and model card agree:

- ``moroccan-plates-ocr``: split **by plate text**, not by image (the source's own
  train/val splits share 53 plates). A plate is held out when the first byte of
  the SHA-256 of its canonical text is below 52 (about 20 %). Rows labelled
  ``suspect`` are never scored and never trained on. Two-line plates (cars and
  motorcycles) are trained on and scored like the others. Labels that disagree with the
  photo, found by eye, are fixed or marked ``suspect`` in
  ``models/moroccan_ocr_label_review.csv``; a plate stays in the split of its source text.
- ``french-plates``: one car per image; held out by the same plate-text hash
  (first byte below 64, about 25 %).
- ``moroccan-plates-detection``: the source's own ``train``/``valid`` column. The set
  has boxes only; the plate texts of its ``valid`` scenes were read by eye
  (``models/moroccan_scene_labels.csv``, 2026-12-03: 299 plates, 14 too hidden or
  blurred to read, ``unsure``) so that ``raqib eval`` scores reads there too. They
  are held-out labels: no training script reads them.
- ``romania-dashcam``: split by ride (:data:`DASHCAM_TRAIN_RIDES`). The set has boxes only;
  the plate texts of the held-out rides' 181 boxes were read by eye
  (``models/dashcam_heldout_labels.csv``, 2026-12-06: 39 cars, 5 boxes too blurred to
  read, ``unsure``), so that ``raqib eval`` scores reads of European whole frames there.
  Held-out labels: no training script reads them.

``python models/realdata.py OUT [--datasets DIR] [--recoloured]`` (:func:`main`) writes
every ``raqib eval`` folder of these splits under ``OUT``.

Derived evaluation sets (:func:`write_recoloured_french`): the held-out French photos with
each labelled plate recoloured as a yellow FNI rear plate or a classic black one, a proxy
for the plate colours the shared sets hardly hold (two held-out FNI cars, one black plate).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.reader.plate_text import canonicalize

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASETS = ROOT.parent / "shared" / "datasets"
SCENE_LABELS = Path(__file__).resolve().parent / "moroccan_scene_labels.csv"
"""Plate texts of the Moroccan ``valid`` scenes, read by eye (evaluation only)."""
DASHCAM_LABELS = Path(__file__).resolve().parent / "dashcam_heldout_labels.csv"
"""Plate texts of the held-out dashcam rides' boxes, read by eye (evaluation only)."""
OCR_LABEL_REVIEW = Path(__file__).resolve().parent / "moroccan_ocr_label_review.csv"
"""Moroccan crops whose source label disagrees with the photo: fixed, or ``suspect``."""

MA_OCR = "moroccan-plates-ocr"
MA_DET = "moroccan-plates-detection"
FRENCH = "french-plates"


def _hash_byte(text: str) -> int:
    return hashlib.sha256(text.encode("utf-8")).digest()[0]


def held_out(text: str, share: float) -> bool:
    """True if the plate ``text`` is in the held-out part (deterministic, by plate)."""
    return _hash_byte(text) < round(256 * share)


Box = tuple[float, float, float, float]
"""x, y, w, h in pixels of the stored image."""


@dataclass(frozen=True)
class Row:
    path: Path
    text: str
    """canonical plate text ("" when only the box is labelled)"""
    box: Box | None
    validation: bool
    lines: int = 1
    scored: bool = True


def _manifest_rows(folder: Path) -> Iterator[dict[str, str]]:
    """The rows of ``folder/manifest.csv`` (the format every shared set uses)."""
    with (folder / "manifest.csv").open(encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def ocr_label_review(path: Path = OCR_LABEL_REVIEW) -> dict[str, str | None]:
    """Canonical plate text by image (relative to the set) of the Moroccan crops whose source
    label was found wrong by eye; None where the photo cannot be read with certainty."""
    with path.open(encoding="utf-8", newline="") as fh:
        return {
            r["image"]: canonicalize(r["plate_text"])[0] if r["label_status"] == "fixed" else None
            for r in csv.DictReader(fh)
        }


def moroccan_ocr(datasets: Path, review: Path = OCR_LABEL_REVIEW) -> list[Row]:
    """Moroccan crops, ``validation`` by plate (its source text, so a fixed label keeps its
    split); ``suspect`` rows, in the source or the review, unscored and not trained on."""
    folder = datasets / MA_OCR
    fixes = ocr_label_review(review)
    rows: list[Row] = []
    for r in _manifest_rows(folder):
        source, _fmt = canonicalize(r["plate_text"])
        fixed = fixes.get(r["image"], source)
        lines = int(r["n_lines"] or 1)
        scored = r["label_status"] != "suspect" and fixed is not None
        text = source if fixed is None else fixed
        rows.append(Row(folder / r["image"], text, None, held_out(source, 0.2), lines, scored))
    return rows


def _box(r: dict[str, str]) -> Box | None:
    if not r["w"]:
        return None
    return _xywh(r)


def _xywh(r: dict[str, str]) -> Box:
    return (float(r["x"]), float(r["y"]), float(r["w"]), float(r["h"]))


def french(datasets: Path) -> list[Row]:
    """French cars with plate box and canonical text, ``validation`` by plate."""
    folder = datasets / FRENCH
    rows: list[Row] = []
    for r in _manifest_rows(folder):
        text, fmt = canonicalize(r["plate_text"])
        rows.append(
            Row(folder / r["image"], text, _box(r), held_out(text, 0.25), scored=fmt == "FR")
        )
    return rows


def moroccan_detection(datasets: Path) -> list[Row]:
    """Moroccan scenes with one plate box each; ``validation`` is the source's ``valid`` split."""
    folder = datasets / MA_DET
    return [
        Row(folder / r["image"], "", _box(r), r["split"] != "train") for r in _manifest_rows(folder)
    ]


def moroccan_scene_texts(path: Path = SCENE_LABELS) -> dict[str, str]:
    """Canonical plate text by image (relative to the set) of the Moroccan ``valid`` scenes
    read by eye; rows marked ``unsure`` are left out."""
    with path.open(encoding="utf-8", newline="") as fh:
        return {
            r["image"]: canonicalize(r["plate_text"])[0]
            for r in csv.DictReader(fh)
            if r["label_status"] != "unsure" and r["plate_text"]
        }


def dashcam_heldout_texts(path: Path | None = None) -> dict[tuple[str, Box], str]:
    """Canonical plate text by image (relative to the set) and box (as the set's manifest
    gives it) of the held-out dashcam rides, read by eye (``path``, by default
    :data:`DASHCAM_LABELS`); rows marked ``unsure`` are left out."""
    with (path or DASHCAM_LABELS).open(encoding="utf-8", newline="") as fh:
        return {
            (r["image"], _xywh(r)): canonicalize(r["plate_text"])[0]
            for r in csv.DictReader(fh)
            if r["label_status"] != "unsure" and r["plate_text"]
        }


@contextmanager
def _manifest_writer(folder: Path) -> Iterator[Any]:
    """A CSV writer of ``folder/manifest.csv`` (``folder`` made), its header written: the
    ``raqib eval`` manifest format."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "manifest.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "plate_text", "x", "y", "w", "h"])
        yield writer


def available(datasets: Path) -> bool:
    return all((datasets / name / "manifest.csv").is_file() for name in (MA_OCR, FRENCH, MA_DET))


def write_validation_manifests(datasets: Path, out: Path) -> list[Path]:
    """Folders for ``raqib eval``: one ``manifest.csv`` per set listing only its held-out rows.

    Image paths are absolute (the images stay in ``datasets``; nothing is copied).
    Moroccan crops: scored rows, one- and two-line (empty box: the image is the crop).
    Moroccan scenes: their texts read by eye (:func:`moroccan_scene_texts`), empty where
    unsure (then scored for detection only).
    """
    scene_texts = moroccan_scene_texts()
    sets: dict[str, list[tuple[Row, str]]] = {
        "moroccan-ocr-val": [
            (r, r.text) for r in moroccan_ocr(datasets) if r.validation and r.scored
        ],
        "french-val": [(r, r.text) for r in french(datasets) if r.validation and r.scored],
        "moroccan-detection-valid": [
            (r, scene_texts.get(r.path.relative_to(datasets / MA_DET).as_posix(), ""))
            for r in moroccan_detection(datasets)
            if r.validation
        ],
    }
    folders = []
    for name, rows in sets.items():
        folder = out / name
        with _manifest_writer(folder) as writer:
            for row, text in rows:
                box = [f"{v:.1f}" for v in row.box] if row.box else ["", "", "", ""]
                writer.writerow([str(row.path.resolve()), text, *box])
        folders.append(folder)
    return folders


# ---------------------------------------------------------------- detector-only sets

ROMANIA = "romania-dashcam"
MIXED = "mixed-plates-roboflow"
"""Validation only (no licence for training): measured, never trained on."""

DASHCAM_TRAIN_RIDES = frozenset({"dayride_type1_001"})
"""``romania-dashcam`` split by ride (the file name before ``_t<seconds>``): the
largest dusk ride (385 frames) is trained on; the two other dusk rides and the
only night ride (82 frames) are held out whole, so the night figure is measured
on a ride of which the detector never saw a real frame."""


def dashcam_ride(path: Path) -> str:
    """The ride a dashcam frame belongs to: its file name without ``_t<seconds>``."""
    return path.stem.rsplit("_t", 1)[0]


def is_night_ride(path: Path) -> bool:
    return dashcam_ride(path).startswith("nightride")


def romania_dashcam(datasets: Path) -> list[Row]:
    """Dashcam plate boxes (no text); ``validation`` unless the ride is a training ride."""
    folder = datasets / ROMANIA
    rows: list[Row] = []
    for r in _manifest_rows(folder):
        path = folder / r["image"]
        rows.append(Row(path, "", _box(r), dashcam_ride(path) not in DASHCAM_TRAIN_RIDES))
    return rows


def mixed_plates(datasets: Path) -> list[Row]:
    """Validation-only mixed scenes with boxes (text where labelled); all rows are validation."""
    folder = datasets / MIXED
    rows: list[Row] = []
    for r in _manifest_rows(folder):
        text = canonicalize(r["plate_text"])[0] if r["plate_text"] else ""
        rows.append(Row(folder / r["image"], text, _box(r), True))
    return rows


def write_detector_manifests(datasets: Path, out: Path) -> list[Path]:
    """``raqib eval`` folders for the detector's held-out sets beyond
    :func:`write_validation_manifests`: the held-out dashcam rides (all, and the
    night ride alone), their texts read by eye (:func:`dashcam_heldout_texts`, empty where
    unsure: scored for detection only), and the validation-only mixed scenes. Absolute
    image paths."""
    dash: list[Row] = []
    if (datasets / ROMANIA / "manifest.csv").is_file():
        texts = dashcam_heldout_texts()
        relative = datasets / ROMANIA
        dash = [
            replace(r, text=texts.get((r.path.relative_to(relative).as_posix(), r.box), ""))
            for r in romania_dashcam(datasets)
            if r.validation and r.box is not None
        ]
    sets: dict[str, list[Row]] = {
        "dashcam-heldout": dash,
        "dashcam-night": [r for r in dash if is_night_ride(r.path)],
    }
    if (datasets / MIXED / "manifest.csv").is_file():
        sets["mixed-plates"] = mixed_plates(datasets)
    folders = []
    for name, rows in sets.items():
        folder = out / name
        with _manifest_writer(folder) as writer:
            for row in rows:
                box = [f"{v:.1f}" for v in row.box] if row.box else ["", "", "", ""]
                writer.writerow([str(row.path.resolve()), row.text, *box])
        folders.append(folder)
    return folders


# ---------------------------------------------------------------- recoloured plates

RECOLOURED_YELLOW = (35.0, 198.0, 235.0)
"""The yellow paper (BGR) of the proxy FNI rear plates: the middle of the yellows that
``agent.synth.scenes.recolour_plate`` draws for the detector's training plates."""
RECOLOURED_SILVER = 200.0
"""The grey of the proxy classic black plates' characters (the middle of that range too)."""


def write_recoloured_french(datasets: Path, out: Path) -> list[Path]:
    """``french-val-yellow`` and ``french-val-black`` under ``out``: the held-out French
    photos (:func:`french`) with each labelled plate box recoloured by
    ``agent.synth.scenes.yellow_plate`` / ``black_plate`` (real glyphs, ink and paper kept
    as lightness), written in the source's format (JPEG at quality 95) at the source's
    relative path, beside a ``manifest.csv`` of those paths.

    Why: the acceptance photos of French cars include old FNI plates in all their colours,
    and the shared sets hold two held-out FNI cars and one black plate, too few to measure.
    A proxy only: the recoloured plates keep SIV texts and fonts, and a box a little larger
    than its plate recolours a rim of the car too."""
    import cv2
    import numpy as np

    from agent.synth.scenes import black_plate, yellow_plate

    rows = [r for r in french(datasets) if r.validation and r.scored and r.box]
    folders = []
    for name, recolour in (
        ("french-val-yellow", lambda p: yellow_plate(p, np.array(RECOLOURED_YELLOW, np.float32))),
        ("french-val-black", lambda p: black_plate(p, RECOLOURED_SILVER)),
    ):
        folder = out / name
        images: dict[Path, np.ndarray] = {}
        for row in rows:
            image = images.get(row.path)
            if image is None:
                image = images[row.path] = cv2.imread(str(row.path), cv2.IMREAD_COLOR)
            x, y, w, h = (round(v) for v in row.box or (0, 0, 0, 0))
            x0, y0 = max(0, x), max(0, y)
            x1, y1 = min(image.shape[1], x + w), min(image.shape[0], y + h)
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                image[y0:y1, x0:x1] = recolour(image[y0:y1, x0:x1])
        with _manifest_writer(folder) as writer:
            for row in rows:
                relative = row.path.relative_to(datasets / FRENCH).as_posix()
                writer.writerow([relative, row.text, *(f"{v:.1f}" for v in row.box or ())])
        for path, image in images.items():
            target = folder / path.relative_to(datasets / FRENCH)
            target.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    """``python models/realdata.py OUT``: every ``raqib eval`` folder of the shared sets
    under ``OUT`` (held-out and validation-only rows, the detector's dashcam and mixed
    sets; ``--recoloured`` the French proxies too), one path printed per folder."""
    parser = argparse.ArgumentParser(
        description="write raqib-eval folders of the held-out and validation-only rows"
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument(
        "--recoloured",
        action="store_true",
        help="also write the held-out French photos with their plates recoloured yellow / black",
    )
    args = parser.parse_args(argv)
    if not available(args.datasets):
        print(
            f"realdata: {args.datasets} does not hold the shared sets"
            f" ({MA_OCR}, {FRENCH}, {MA_DET}, each with its manifest.csv);"
            " point --datasets at ../shared/datasets",
            file=sys.stderr,
        )
        return 2
    folders = write_validation_manifests(args.datasets, args.out)
    folders += write_detector_manifests(args.datasets, args.out)
    if args.recoloured:
        folders += write_recoloured_french(args.datasets, args.out)
    for folder in folders:
        print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
