"""Pseudo-label real plate boxes that have no text, with a teacher OCR (training time only).

The teacher is PP-OCRv4 through ``rapidocr-onnxruntime`` (the ``teacher`` extra;
its models are inside the wheel, nothing is downloaded). It never runs on the
device and nothing under ``agent/`` imports it. Its labels are kept only when
they can be trusted, by the rules below, and written to
``models/pseudo_labels.csv`` (committed, no images) with the teacher's version
and the rules in ``models/pseudo_labels.json``, so ``make models`` rebuilds
from the CSV without the teacher.

Sets labelled:

- ``romania-dashcam``: only the ride ``dayride_type1_001`` (the other rides,
  ``dayride_type1_002``, ``dayride_type1_003`` and the night ride
  ``nightride_type3_001``, stay held out: split by ride, never by frame).
  Rule ``ro``: the teacher reads the box with two different margins, both reads
  agree after dropping the ``RO`` country band (and O/0, I/1 put right by position),
  each has confidence >= 0.8 and
  the text is a Romanian plate (``B 12 ABC``, ``B 123 ABC``, ``CJ 12 ABC``).
- ``moroccan-plates-detection`` (source split ``train`` only; ``valid`` stays
  held out): the teacher reads the Latin digits, our own recogniser the Arabic
  letter. Rule ``ma``: our read is a valid one-line Moroccan plate with
  confidence >= 0.7, the teacher's confidence is >= 0.8, and the teacher's digits
  (in order) are ours (serial then region), allowing the ``1`` the teacher reads for
  each bar and for the thin alif; the label is our read.

    python models/teacher.py            # writes models/pseudo_labels.{csv,json}
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import realdata

from agent.reader.plate_text import canonicalize

ROOT = Path(__file__).resolve().parent.parent
CSV_PATH = ROOT / "models" / "pseudo_labels.csv"
META_PATH = ROOT / "models" / "pseudo_labels.json"
ROMANIA = "romania-dashcam"
ROMANIA_TRAIN_RIDES = frozenset({"dayride_type1_001"})
"""The only dashcam ride trained on; every other ride is held out."""
RO_PLATE = re.compile(r"^(B\d{2,3}[A-Z]{3}|[A-Z]{2}\d{2}[A-Z]{3})$")
RO_MIN_CONF = 0.8
_RO_LOOSE = re.compile(r"^(B|[A-Z]{2})([0-9OIZ]{2,3})([A-Z0-9]{3})$")
_TO_DIGIT = str.maketrans("OIZ", "012")
_TO_LETTER = str.maketrans("0182", "OIBZ")
MA_TEACHER_MIN_CONF = 0.8
MA_OURS_MIN_CONF = 0.7
FIELDS = ("dataset", "image", "x", "y", "w", "h", "plate_text", "lines", "rule", "teacher_conf")

Array = np.ndarray[Any, Any]


def ride(image: str) -> str:
    """The ride of a dashcam frame (``images/train/dayride_type1_001_t1054.jpg`` ->
    ``dayride_type1_001``)."""
    return re.sub(r"_t\d+$", "", Path(image).stem)


def _crop(img: Array, box: tuple[float, float, float, float], mx: float, my: float) -> Array:
    x, y, w, h = box
    x0, y0 = max(0, round(x - mx * w)), max(0, round(y - my * h))
    x1, y1 = min(img.shape[1], round(x + w + mx * w)), min(img.shape[0], round(y + h + my * h))
    return np.ascontiguousarray(img[y0:y1, x0:x1])


TEACHER_MISSING = (
    "the PP-OCRv4 teacher needs the `teacher` extra (pip install -e '.[teacher]'); "
    "rapidocr-onnxruntime is published for Python 3.11 and 3.12 only"
)


class Teacher:
    """PP-OCRv4 recognition (no detection) of one plate crop."""

    def __init__(self) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:  # the extra installs nothing on Python 3.13 (see pyproject)
            raise RuntimeError(TEACHER_MISSING) from exc

        self.engine = RapidOCR()
        self.version = f"rapidocr-onnxruntime {metadata.version('rapidocr-onnxruntime')}"

    def read(self, crop: Array) -> tuple[str, float]:
        """Upper-case alphanumerics of the crop's text and the teacher's confidence."""
        if crop.shape[0] < 4 or crop.shape[1] < 4:
            return "", 0.0
        result = self.engine(crop, use_det=False, use_cls=False, use_rec=True)[0]
        if not result:
            return "", 0.0
        text, conf = result[0]
        return "".join(ch for ch in str(text).upper() if ch.isascii() and ch.isalnum()), float(conf)


def romanian(text: str) -> str:
    """``text`` as a Romanian plate, ``O``/``I`` in the number and ``0``/``1``/``8`` in the
    letters put right by position, the ``RO`` of the band dropped; ``""`` if it is none."""
    for candidate in (text, text[2:] if text.startswith("RO") else ""):
        m = _RO_LOOSE.match(candidate)
        if m is not None:
            fixed = m.group(1) + m.group(2).translate(_TO_DIGIT) + m.group(3).translate(_TO_LETTER)
            if RO_PLATE.match(fixed):
                return fixed
    return ""


def _rows(datasets: Path, name: str) -> Iterator[dict[str, str]]:
    with (datasets / name / "manifest.csv").open(encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def label_romania(
    datasets: Path, teacher: Teacher, rides: frozenset[str] = ROMANIA_TRAIN_RIDES
) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Rule ``ro`` on the boxes of ``rides`` (default: the training ride)."""
    kept: list[dict[str, str]] = []
    counts = {"boxes": 0, "kept": 0}
    for r in _rows(datasets, ROMANIA):
        if ride(r["image"]) not in rides or not r["w"]:
            continue
        img = cv2.imread(str(datasets / ROMANIA / r["image"]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        counts["boxes"] += 1
        box = (float(r["x"]), float(r["y"]), float(r["w"]), float(r["h"]))
        a, ca = teacher.read(_crop(img, box, 0.05, 0.15))
        b, cb = teacher.read(_crop(img, box, 0.12, 0.35))
        a, b = romanian(a), romanian(b)
        if a and a == b and min(ca, cb) >= RO_MIN_CONF:
            counts["kept"] += 1
            kept.append(_out(ROMANIA, r, canonicalize(a)[0], lines=1, rule="ro", conf=min(ca, cb)))
    return kept, counts


def _out(
    dataset: str, r: dict[str, str], text: str, *, lines: int, rule: str, conf: float
) -> dict[str, str]:
    return {
        "dataset": dataset,
        "image": r["image"],
        **{k: r[k] for k in ("x", "y", "w", "h")},
        "plate_text": text,
        "lines": str(lines),
        "rule": rule,
        "teacher_conf": f"{conf:.3f}",
    }


def label_moroccan(
    datasets: Path, teacher: Teacher, recogniser: Path
) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Rule ``ma`` on the training split of the Moroccan scenes."""
    from agent.reader.recogniser import Recogniser

    ours = Recogniser(recogniser, num_threads=1)
    kept: list[dict[str, str]] = []
    counts = {"boxes": 0, "kept": 0}
    for r in _rows(datasets, realdata.MA_DET):
        if r["split"] != "train" or not r["w"]:
            continue
        img = cv2.imread(str(datasets / realdata.MA_DET / r["image"]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        counts["boxes"] += 1
        box = (float(r["x"]), float(r["y"]), float(r["w"]), float(r["h"]))
        crop = _crop(img, box, 0.05, 0.12)
        if crop.shape[0] < 8 or crop.shape[1] < 2 * crop.shape[0]:
            continue  # tiny, or square enough to be a two-line plate: skipped
        raw, conf = ours.read_best(crop)
        text, fmt = canonicalize(raw)
        if fmt != "MA" or conf < MA_OURS_MIN_CONF or text.count("-") != 2 or "WW" in text:
            continue
        serial, _letter, region = text.split("-")
        if not (serial.isdigit() and region.isdigit()):
            continue
        t_text, t_conf = teacher.read(crop)
        digits = "".join(ch for ch in t_text if ch.isdigit())
        bars = re.compile(rf"^1?{serial}1{{0,3}}{region}1?$")  # bars and alif read as "1"
        if t_conf >= MA_TEACHER_MIN_CONF and bars.match(digits) is not None:
            counts["kept"] += 1
            kept.append(_out(realdata.MA_DET, r, text, lines=1, rule="ma", conf=t_conf))
    return kept, counts


def load(path: Path = CSV_PATH) -> list[dict[str, str]]:
    """The committed pseudo-labels (empty when the file is absent)."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_held_out_eval(datasets: Path, teacher: Teacher, out: Path) -> None:
    """``raqib eval`` folders of the *held-out* dashcam rides labelled by rule ``ro``, for
    measuring only (never trained on): ``out/dashcam-<ride>/`` (whole frames, boxes) and
    ``out/dashcam-<ride>-crops/`` (the box with the runtime margins, written as JPEG)."""
    rides = sorted({ride(r["image"]) for r in _rows(datasets, ROMANIA)} - ROMANIA_TRAIN_RIDES)
    for name in rides:
        kept, counts = label_romania(datasets, teacher, frozenset({name}))
        frames, crops = out / f"dashcam-{name}", out / f"dashcam-{name}-crops"
        frames.mkdir(parents=True, exist_ok=True)
        crops.mkdir(parents=True, exist_ok=True)
        head = "image,plate_text,x,y,w,h\n"
        frame_rows, crop_rows = [head], [head]
        for i, row in enumerate(kept):
            path = (datasets / ROMANIA / row["image"]).resolve()
            box = tuple(float(row[k]) for k in ("x", "y", "w", "h"))
            frame_rows.append(f"{path},{row['plate_text']},{','.join(row[k] for k in 'xywh')}\n")
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is not None:
                cv2.imwrite(str(crops / f"{i:04d}.jpg"), _crop(img, box, 0.05, 0.12))  # type: ignore[arg-type]
                crop_rows.append(f"{i:04d}.jpg,{row['plate_text']},,,,\n")
        (frames / "manifest.csv").write_text("".join(frame_rows), encoding="utf-8")
        (crops / "manifest.csv").write_text("".join(crop_rows), encoding="utf-8")
        print(f"{name}: {counts['kept']} of {counts['boxes']} boxes labelled -> {frames}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=realdata.DEFAULT_DATASETS)
    parser.add_argument("--recogniser", type=Path, default=ROOT / "models" / "recogniser.tflite")
    parser.add_argument("--out", type=Path, default=CSV_PATH)
    parser.add_argument(
        "--held-out-eval",
        type=Path,
        metavar="DIR",
        help="instead: write raqib-eval folders of the held-out rides (measuring only)",
    )
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    teacher = Teacher()
    if args.held_out_eval is not None:
        write_held_out_eval(args.datasets, teacher, args.held_out_eval)
        return 0
    t0 = time.perf_counter()
    ro, ro_counts = label_romania(args.datasets, teacher)
    print(f"romania: kept {ro_counts['kept']} of {ro_counts['boxes']}", flush=True)
    ma, ma_counts = label_moroccan(args.datasets, teacher, args.recogniser)
    print(f"moroccan scenes: kept {ma_counts['kept']} of {ma_counts['boxes']}", flush=True)
    with args.out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        writer.writerows(ro + ma)
    our_version = json.loads(args.recogniser.with_suffix(".json").read_text())["version"]
    meta = {
        "teacher": teacher.version + " (PP-OCRv4 recognition, models inside the wheel)",
        "letter_model": f"raqib-recogniser {our_version}",
        "rules": {
            "ro": f"{ROMANIA} ride(s) {sorted(ROMANIA_TRAIN_RIDES)} only; two margins "
            "(5 %/15 % and 12 %/35 %) read alike after dropping 'RO' and putting O/I/Z "
            "in the number and 0/1/8/2 in the letters right by position, confidence >= "
            f"{RO_MIN_CONF}, Romanian shape {RO_PLATE.pattern}",
            "ma": f"{realdata.MA_DET} split train only; our read a one-line-format Moroccan "
            f"plate with confidence >= {MA_OURS_MIN_CONF}; teacher confidence >= "
            f"{MA_TEACHER_MIN_CONF} and its digits are serial + region, with up to 3 '1's "
            "between (bars, alif) and one at either end",
        },
        "counts": {ROMANIA: ro_counts, realdata.MA_DET: ma_counts},
        "seconds": round(time.perf_counter() - t0),
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
