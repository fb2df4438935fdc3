"""``raqib eval DIR``: measure the reader on a folder of labelled images.

``DIR/manifest.csv`` has the columns ``image,plate_text,x,y,w,h`` (more columns
are ignored), one row per plate; ``image`` is relative to ``DIR``. A row with an
empty box says the image *is* the plate crop: it is read by the recogniser
alone. Rows with an empty ``plate_text`` count for detection only. If the
manifest has a ``label_status`` column, rows marked ``suspect`` are not scored
(the convention of the shared datasets).

Figures:

- detection recall: labelled boxes overlapped (IoU >= 0.5) by a detected box;
- exact-plate accuracy: plates whose canonical read equals the canonical label,
  separators ignored and ``O``/``0`` and ``I``/``1`` each taken as one character
  (:func:`same_plate`: the issue's acceptance rule; the matcher folds them too)
  (the read of a box is the text of the best-overlapping plate that ``raqib read``
  reports, IoU >= 0.3 (:meth:`~agent.reader.pipeline.ModelPlateReader.reported`);
  a plate missed or not reported is a wrong read);
- character accuracy: ``1 - edit distance / label length`` (at least 0),
  summed over plates and divided by the total label length;
- ms per image: detector + recogniser wall time (image decoding excluded).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from agent.deep_reads import one_frame_tracks
from agent.errors import FrameError, InputError
from agent.frames import Image
from agent.reader.pipeline import ModelPlateReader, plate_unread
from agent.reader.plate_text import canonicalize
from agent.reads import Box, box_iou, edit_distance, plate_key

DETECTION_IOU = 0.5
READ_IOU = 0.3


class ManifestError(InputError):
    """The evaluation folder or its manifest.csv is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Truth:
    text: str
    """canonical text, "" when only the box is labelled"""
    box: Box | None
    scored: bool = True


@dataclass(frozen=True, slots=True)
class ScoredRead:
    """What would reach the watchlist matcher for one labelled plate (``text`` "" when
    nothing was reported there), for :mod:`agent.reader.alert_check`."""

    truth: str
    """The label's canonical text ("" for a stray read: a text away from every labelled box)."""
    text: str
    confidence: float
    alternatives: tuple[str, ...] = ()
    image: str = ""
    """The image's name in the manifest (``raqib eval --per-plate``)."""
    found: bool | None = None
    """A box was found over the labelled one (IoU 0.5); None for a crop or a stray read."""
    scored: str | None = None
    """The text the exact figures scored where the matcher gets none (``text`` ""): a
    crop's read under the floor, which ``raqib read --crops`` still reports."""

    @property
    def scored_text(self) -> str:
        """The text the exact figures scored: ``scored`` where set, else ``text``."""
        return self.text if self.scored is None else self.scored


@dataclass
class EvalResult:
    images: int = 0
    boxes: int = 0
    detected: int = 0
    plates: int = 0
    exact: int = 0
    chars_right: int = 0
    chars_total: int = 0
    ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reads: list[ScoredRead] = field(default_factory=list)
    """Per scored plate with a text, what ``raqib read`` reported for it."""
    stray: list[ScoredRead] = field(default_factory=list)
    """Reported reads of photos that overlap no labelled box (IoU < 0.3)."""

    def figures(self) -> dict[str, float]:
        return {
            "images": float(self.images),
            "labelled_boxes": float(self.boxes),
            "detection_recall": self.detected / self.boxes if self.boxes else float("nan"),
            "plates": float(self.plates),
            "exact_plate_accuracy": self.exact / self.plates if self.plates else float("nan"),
            "character_accuracy": (
                self.chars_right / self.chars_total if self.chars_total else float("nan")
            ),
            "ms_per_image": float(np.mean(self.ms)) if self.ms else float("nan"),
            "unreadable_images": float(len(self.errors)),
        }


def _box(row: dict[str, str], where: str) -> Box | None:
    values = [(row.get(k) or "").strip() for k in ("x", "y", "w", "h")]
    if not any(values):
        return None
    try:
        x, y, w, h = (round(float(v)) for v in values)
    except ValueError as exc:
        raise ManifestError(f"{where}: box x,y,w,h must be numbers, got {values}") from exc
    if w <= 0 or h <= 0:
        raise ManifestError(f"{where}: box width and height must be positive")
    return (x, y, w, h)


def load_manifest(folder: Path) -> dict[str, list[Truth]]:
    """``{image: [Truth, ...]}`` from ``folder/manifest.csv``, in file order."""
    path = folder / "manifest.csv"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ManifestError(f"{path} not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc
    reader = csv.DictReader(text.splitlines())
    missing = {"image", "plate_text", "x", "y", "w", "h"} - set(reader.fieldnames or [])
    if missing:
        raise ManifestError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
    rows: dict[str, list[Truth]] = {}
    for n, row in enumerate(reader, start=2):
        image = (row.get("image") or "").strip()
        if not image:
            raise ManifestError(f"{path}:{n}: empty image name")
        raw = (row.get("plate_text") or "").strip()
        label = canonicalize(raw)[0] if raw else ""
        scored = (row.get("label_status") or "").strip() != "suspect"
        rows.setdefault(image, []).append(Truth(label, _box(row, f"{path}:{n}"), scored))
    return rows


HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
)
"""ISO-BMFF brands of HEIF and AVIF stills: phones' default photo format, which OpenCV
cannot decode (``ftyp`` box at byte 4, its major brand at byte 8)."""


def load_image(path: Path) -> Image:
    """The BGR image at ``path`` (EXIF orientation applied, as the photo is shown);
    ``FrameError`` if it is missing, unreadable or not an image."""
    if not path.is_file():
        raise FrameError(f"image {path} not found")
    data = np.fromfile(path, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        head = data[:12].tobytes()
        if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
            raise FrameError(
                f"cannot decode image {path}: a HEIF/AVIF photo ({head[8:12].decode()}), "
                "which is not supported: export it as JPEG (a phone's 'most compatible' setting)"
            )
        raise FrameError(f"cannot decode image {path}: not an image, or corrupt")
    return np.ascontiguousarray(image, dtype=np.uint8)


def same_plate(read: str, truth: str) -> bool:
    """True when two canonical texts are the same plate for exact-plate accuracy
    (:func:`~agent.reads.plate_key`: separators ignored, ``O``/``0`` and ``I``/``1`` each one
    character)."""
    return bool(truth) and plate_key(read) == plate_key(truth)


def _score_text(result: EvalResult, truth: Truth, read: str) -> None:
    result.plates += 1
    result.exact += same_plate(read, truth.text)
    result.chars_total += len(truth.text)
    result.chars_right += max(0, len(truth.text) - edit_distance(read, truth.text))


def evaluate_image(
    reader: ModelPlateReader,
    image: Image,
    truths: list[Truth],
    result: EvalResult,
    deep: ModelPlateReader | None = None,
    *,
    name: str = "",
) -> None:
    """Read one image (``name`` in the manifest) and add its figures to ``result``. With
    ``deep`` (the photo reader) a photo ``reader`` sees a plate in is also read by it as the
    daemon's deep reads do, and the two reads are scored as the tracker combines them
    (:func:`agent.deep_reads.one_frame_tracks`)."""
    result.images += 1
    if any(t.box is None for t in truths):  # the image is a plate crop
        start = time.perf_counter()
        text, _fmt, conf, alternatives = reader.read_crop_alternatives(image)
        result.ms.append((time.perf_counter() - start) * 1000)
        reported = bool(text) and conf >= reader.min_confidence
        for t in truths:
            if t.scored and t.text:
                _score_text(result, t, text)
                result.reads.append(
                    ScoredRead(t.text, text, conf, alternatives, name)
                    if reported
                    else ScoredRead(t.text, "", conf, image=name, scored=text)
                )
        return
    start = time.perf_counter()
    found = reader.read_boxes(image)
    reads = reader.reported(found, image.shape[1], image.shape[0])
    boxes_found = [r.box for r in found]
    if deep is not None and (reads or plate_unread(found, reads)):
        deep_reads = deep.read(image)
        reads = one_frame_tracks(reads, deep_reads)
        boxes_found += [r.box for r in deep_reads]
    result.ms.append((time.perf_counter() - start) * 1000)
    for t in truths:
        if not t.scored or t.box is None:
            continue
        boxed = max((box_iou(box, t.box) for box in boxes_found), default=0.0) >= DETECTION_IOU
        result.boxes += 1
        result.detected += boxed
        if t.text:
            overlaps = [(box_iou(r.box, t.box), r) for r in reads]
            best = max(overlaps, key=lambda o: o[0], default=None)
            read = best[1] if best is not None and best[0] >= READ_IOU else None
            _score_text(result, t, read.text if read else "")
            result.reads.append(
                ScoredRead(t.text, read.text, read.confidence, read.alternatives, name, boxed)
                if read
                else ScoredRead(t.text, "", 0.0, image=name, found=boxed)
            )
    boxes = [t.box for t in truths if t.box is not None]
    result.stray.extend(
        ScoredRead("", r.text, r.confidence, r.alternatives, name)
        for r in reads
        if all(box_iou(r.box, box) < READ_IOU for box in boxes)
    )


PER_PLATE_COLUMNS = (
    "image",
    "plate_text",
    "read",
    "confidence",
    "exact",
    "reported",
    "found",
    "alternatives",
)
"""``raqib eval --per-plate``: one row per labelled plate, then one per stray read (its
``plate_text`` empty). ``read``: the text scored (a crop's read however unsure);
``reported``: it reaches the watchlist matcher (at the reader's floor); ``found``: empty for
crops and stray reads; alternatives ``|``-joined."""


def write_per_plate(result: EvalResult, out: TextIO) -> None:
    """Write ``result``'s plates and stray reads as CSV (:data:`PER_PLATE_COLUMNS`) to
    ``out`` (opened with ``newline=""``): the misses an evaluator looks at next, with what
    the reader reported for each."""
    writer = csv.writer(out)
    writer.writerow(PER_PLATE_COLUMNS)
    for r in [*result.reads, *result.stray]:
        read = r.scored_text
        writer.writerow(
            [
                r.image,
                r.truth,
                read,
                f"{r.confidence:.3f}",
                int(same_plate(read, r.truth)) if r.truth else "",
                int(bool(r.text)),
                "" if r.found is None else int(r.found),
                "|".join(r.alternatives),
            ]
        )


def iter_images(folder: Path, manifest: dict[str, list[Truth]]) -> Iterator[tuple[str, Path]]:
    for name in manifest:
        yield name, folder / name


def evaluate_folder(
    reader: ModelPlateReader,
    folder: Path,
    deep: ModelPlateReader | None = None,
    *,
    before_image: Callable[[str], None] | None = None,
) -> EvalResult:
    """Figures for every image of ``folder/manifest.csv``; unreadable images are listed.
    ``deep``: see :func:`evaluate_image`. ``before_image`` is called with each image's
    manifest name before it is read (``scripts/eval_real.py --raw-reads`` files the
    recognisers' reads by image)."""
    manifest = load_manifest(folder)
    result = EvalResult()
    for name, path in iter_images(folder, manifest):
        if before_image is not None:
            before_image(name)
        try:
            image = load_image(path)
        except FrameError as exc:
            result.errors.append(str(exc))
            continue
        try:
            evaluate_image(reader, image, manifest[name], result, deep, name=name)
        except FrameError as exc:  # the reader refused it: its plates count as not read
            result.errors.append(f"{path}: {exc}")
            for truth in manifest[name]:
                if truth.scored and truth.text:
                    _score_text(result, truth, "")
                    result.reads.append(ScoredRead(truth.text, "", 0.0, image=name))
    return result
