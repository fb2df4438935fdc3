"""Side by side: our reader and PP-OCRv4 on the same folders, exact accuracy and ms per image.

    python scripts/bench_compare.py [--datasets ../shared/datasets] [--limit N] [--json]
                                    [--config reader.toml ...]

Needs the ``teacher`` extra (``rapidocr-onnxruntime``, PP-OCRv4 with its models
inside the wheel; never a device dependency). Folders (the manifest format of
``raqib eval``):

- ``eu-square-crops`` (validation only): square and two-line European crops;
- ``mixed-plates-roboflow`` (validation only): whole 416 x 416 photos;
- ``french-val``: the held-out French cars, whole photos (models/realdata.py);
- ``moroccan-ocr-val``: the held-out Moroccan crops (Arabic letter included);
- ``dashcam-heldout``: the held-out ``romania-dashcam`` rides, whole 1280 x 720 dusk and
  night frames of Romanian plates, their texts read by eye (models/realdata.py).

Ours: exactly ``raqib eval`` (agent.reader.evaluate: detector + recogniser on
photos read as stills, recogniser alone on crops), one thread. PP-OCRv4: the whole engine
(text detection, angle classifier, recognition) on the same image, its default
threads; for a photo, the text lines whose centre lies in the labelled plate
box (widened by 20 %) are joined top to bottom; for a crop, every line. Its
text is given every benefit: the canonical text is compared, and again with a
leading country code of the blue band (``F``, ``D``, ``NL`` ...) dropped.
Exact = same canonical text with separators ignored and ``O``/``0``,
``I``/``1`` each one character (agent.reader.evaluate.same_plate). ms per
image: reading only (decoding excluded), mean. Each folder is timed in four passes, PP-OCRv4,
ours, ours, PP-OCRv4, each reader's ms the mean of its two: a shared host whose speed drifts
during the run then slows both alike (folder by folder in one pass each, one slow spell
gave 1.0x and the next 1.4x on the same photos; image by image alternately, ours read right
after PP-OCRv4 was 1.15-1.43x slower on photos than in its own pass: docs/benchmarks.md,
twenty-fifth session).

``--config FILE`` (repeatable): ours also reads every folder in the ``[reader]``
configuration of that TOML file (its file stem names the rows), beside the shipped one,
against the same PP-OCRv4 run: what a lighter configuration gains in speed and costs
in accuracy, measured in one run (one pass of its own through each folder).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))

import realdata  # noqa: E402  (models/ is not a package)

from agent.config import DEFAULT_MODELS_DIR, ReaderConfig, load_config  # noqa: E402
from agent.errors import FrameError  # noqa: E402
from agent.reader.evaluate import (  # noqa: E402
    Truth,
    evaluate_folder,
    load_image,
    load_manifest,
    same_plate,
)
from agent.reader.pipeline import ModelPlateReader  # noqa: E402
from agent.reader.plate_text import canonicalize  # noqa: E402

BAND_CODES = (
    "NL",
    "PL",
    "RO",
    "CH",
    "CZ",
    "SK",
    "DK",
    "GB",
    "IRL",
    "F",
    "D",
    "E",
    "I",
    "B",
    "P",
    "A",
    "S",
    "H",
    "L",
)
WIDEN = 0.2


def _inside(points: Any, box: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    cx = sum(float(p[0]) for p in points) / len(points)
    cy = sum(float(p[1]) for p in points) / len(points)
    return (x - WIDEN * w <= cx <= x + (1 + WIDEN) * w) and (
        y - WIDEN * h <= cy <= y + (1 + WIDEN) * h
    )


def _joined(lines: list[Any], box: tuple[int, int, int, int] | None) -> str:
    kept = [ln for ln in lines if box is None or _inside(ln[0], box)]
    kept.sort(key=lambda ln: (min(float(p[1]) for p in ln[0]), min(float(p[0]) for p in ln[0])))
    return "".join(
        "".join(ch for ch in str(ln[1]).upper() if ch.isascii() and ch.isalnum()) for ln in kept
    )


def teacher_right(text: str, truth: str) -> bool:
    """PP-OCR's text is the plate: as read, or with a band code in front dropped."""
    candidates = [text] + [text[len(c) :] for c in BAND_CODES if text.startswith(c)]
    return any(same_plate(canonicalize(c)[0], truth) for c in candidates if c)


def run_teacher(engine: Any, folder: Path, limit: int) -> dict[str, float]:
    manifest = load_manifest(folder)
    plates = exact = 0
    ms: list[float] = []
    for name in list(manifest)[:limit]:
        truths: list[Truth] = manifest[name]
        try:
            image = load_image(folder / name)
        except FrameError as exc:  # counted by our reader's run too
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        start = time.perf_counter()
        lines = engine(image)[0] or []
        ms.append((time.perf_counter() - start) * 1000)
        for t in truths:
            if t.scored and t.text:
                plates += 1
                exact += teacher_right(_joined(lines, t.box), t.text)
    return {"plates": plates, "exact": exact / max(plates, 1), "ms": sum(ms) / max(len(ms), 1)}


def side_by_side(
    engine: Any, reader: ModelPlateReader, folder: Path, limit: int
) -> tuple[dict[str, float], dict[str, float]]:
    """PP-OCRv4's figures (:func:`run_teacher`) and ours (``raqib eval``'s) on ``folder``,
    timed PP-OCRv4, ours, ours, PP-OCRv4: each reader's ms per image is the mean of its two
    passes, so a drift of the host's speed during the run weighs on both alike."""
    theirs = run_teacher(engine, folder, limit)
    ours = evaluate_folder(reader, folder).figures()
    ours_again = evaluate_folder(reader, folder).figures()
    theirs_again = run_teacher(engine, folder, limit)
    theirs["ms"] = (theirs["ms"] + theirs_again["ms"]) / 2
    ours["ms_per_image"] = (ours["ms_per_image"] + ours_again["ms_per_image"]) / 2
    return theirs, ours


def _limited(folder: Path, limit: int, work: Path) -> Path:
    """``folder`` itself, or a copy of its manifest with the first ``limit`` images."""
    manifest = load_manifest(folder)
    if len(manifest) <= limit:
        return folder
    out = work / f"{folder.name}-first{limit}"
    out.mkdir(parents=True, exist_ok=True)
    lines = (folder / "manifest.csv").read_text(encoding="utf-8-sig").splitlines()
    keep = set(list(manifest)[:limit])
    body = [ln for ln in lines[1:] if ln.split(",", 1)[0] in keep]
    rows = [lines[0]] + [
        str((folder / ln.split(",", 1)[0]).resolve()) + "," + ln.split(",", 1)[1] for ln in body
    ]
    (out / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=realdata.DEFAULT_DATASETS)
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--limit", type=int, default=10_000, help="images per folder")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--ours-only", action="store_true", help="skip PP-OCRv4 (re-measure a new model)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        default=[],
        help="also run ours in this TOML file's [reader] configuration (repeatable)",
    )
    args = parser.parse_args(argv)
    configs = {"": ReaderConfig(models_dir=args.models)}
    for path in args.config:
        configs[path.stem] = load_config(path).reader.model_copy(update={"models_dir": args.models})
    engine: Any = None
    if not args.ours_only:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:  # the extra installs nothing on Python 3.13 (see pyproject)
            parser.error("PP-OCRv4 needs the `teacher` extra (Python 3.11, 3.12); or --ours-only")

        engine = RapidOCR()
    readers = {
        label: ModelPlateReader.from_config(config, stills=True)
        for label, config in configs.items()
    }
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        val = {f.name: f for f in realdata.write_validation_manifests(args.datasets, work)}
        folders = {
            "eu-square-crops": args.datasets / "eu-square-crops",
            "mixed-plates-roboflow": args.datasets / "mixed-plates-roboflow",
            "french-val": val["french-val"],
            "moroccan-ocr-val": val["moroccan-ocr-val"],
        }
        dash = {f.name: f for f in realdata.write_detector_manifests(args.datasets, work)}
        if "dashcam-heldout" in dash:
            folders["dashcam-heldout"] = dash["dashcam-heldout"]
        for name, full in folders.items():
            folder = _limited(full, args.limit, work)
            theirs: dict[str, float] = {"exact": float("nan"), "ms": float("nan")}
            for label, reader in readers.items():
                if engine is not None and not label:
                    theirs, ours = side_by_side(engine, reader, folder, args.limit)
                else:
                    ours = evaluate_folder(reader, folder).figures()
                rows[f"{name} [{label}]" if label else name] = {
                    "plates": ours["plates"],
                    "ours_exact": ours["exact_plate_accuracy"],
                    "ours_ms": ours["ms_per_image"],
                    "ppocr_exact": theirs["exact"],
                    "ppocr_ms": theirs["ms"],
                    "speed_ratio": theirs["ms"] / max(ours["ms_per_image"], 1e-9),
                }
            print(f"{name}: done", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = ("folder", "plates", "ours", "PP-OCRv4", "ours ms", "PP ms", "x faster")
    width = max(len(head[0]), *(len(name) for name in rows))
    print(f"{head[0]:{width}} " + " ".join(f"{h:>9}" for h in head[1:]))
    for name, r in rows.items():
        cells = (
            f"{r['plates']:.0f}",
            f"{r['ours_exact'] * 100:.1f} %",
            f"{r['ppocr_exact'] * 100:.1f} %",
            f"{r['ours_ms']:.1f}",
            f"{r['ppocr_ms']:.1f}",
            f"{r['speed_ratio']:.0f}",
        )
        print(f"{name:{width}} " + " ".join(f"{c:>9}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
