"""``raqib read`` and ``raqib eval``: the plate reader from the command line.

``raqib read PATH... [--json] [--crops]`` reads images or videos (by extension:
.mp4 .mkv .avi .mov .m4v .ts .h264 .webm are videos, decoded with PyAV); a folder stands for
its photos and videos (:data:`PHOTO_SUFFIXES`, :data:`VIDEO_SUFFIXES`; not its sub-folders). With
``--json`` it prints one line per image or video frame::

    {"image": "PATH", "plates": [{"text": "12345-B-6", "format": "MA",
     "confidence": 0.97, "box": [x, y, w, h]}], "ms": 12.3}

(PATH as given; a video frame's line also has ``"frame": N``). ``--crops``
treats each image as an already cropped plate: recogniser only, one plate per
image, its box the whole image, reported even when the text is not a valid
plate (the confidence says how sure it is). A file that cannot be read is
reported on stderr and the exit status is 1; the other files are still read.

``raqib eval DIR`` prints detection recall, exact-plate accuracy, character
accuracy and ms per image for ``DIR/manifest.csv`` (agent.reader.evaluate).
``--as-video`` reads each photo as the camera reads a frame of its video (the live
reader: no photo passes, the video floor), the path every alert takes.
``--deep-reads`` reads them as video frames and, as the daemon's deep reads do
(``reader.deep_reads``, agent.deep_reads), each photo the camera sees a plate in also
with the photo reader, scored as the tracker combines the two.
``--watchlist N`` also puts each plate's read through the real watchlist matcher, the
plate listed among ``N`` generated entries and then not listed: would the car alert, and
would a read alert on the wrong car (agent.reader.alert_check).
``--per-plate FILE`` also writes a CSV of every labelled plate, what was read there, how
sure, whether it is exact and whether its box was found, then every stray read
(agent.reader.evaluate.PER_PLATE_COLUMNS): the misses to look at next.

Photos are read as stills (``reader.still_tile_above``: from 1000 px the detector
also looks at overlapping tiles at half size, for far plates; ``reader.still_max_side``:
a photo longer than 1920 px is read shrunk, its far plates looked for at its own size),
video frames as the live pipeline reads them (``reader.tile_above``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import RaqibConfig
from agent.errors import FrameError
from agent.frames import Image
from agent.reader.evaluate import EvalResult, evaluate_folder, load_image, write_per_plate
from agent.reader.pipeline import ModelPlateReader, check_frame

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".m4v", ".ts", ".h264", ".webm"})
PHOTO_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
"""What ``raqib read FOLDER`` reads from a folder (HEIF/AVIF to say they are not supported)."""
EXIT_OK = 0
EXIT_ERROR = 1
MAX_LIST_ENTRIES = 5_000_000
log = logging.getLogger(__name__)


def register(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Add ``read`` and ``eval`` to the ``raqib`` sub-command parsers."""
    read = subparsers.add_parser(
        "read", help="read plates in images or videos", parents=list(parents)
    )
    read.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="image or video files, or folders of them",
    )
    read.add_argument("--json", action="store_true", help="one JSON line per image or frame")
    read.add_argument(
        "--crops", action="store_true", help="each image is one plate crop (recogniser only)"
    )
    read.add_argument("--every", type=int, default=1, help="read every Nth video frame")
    read.set_defaults(handler=cmd_read)
    ev = subparsers.add_parser(
        "eval", help="measure the reader on DIR/manifest.csv", parents=list(parents)
    )
    ev.add_argument("dir", type=Path, metavar="DIR", help="images and manifest.csv")
    ev.add_argument("--json", action="store_true", help="one JSON object of figures")
    ev.add_argument(
        "--as-video",
        action="store_true",
        help="read each photo as the camera reads a video frame (the alert path)",
    )
    ev.add_argument(
        "--deep-reads",
        action="store_true",
        help="as video frames, each also read by the photo reader as the daemon's deep reads",
    )
    ev.add_argument(
        "--watchlist",
        type=_entries,
        default=0,
        metavar="N",
        help="also match each read on a generated list of N entries (e.g. 1000000)",
    )
    ev.add_argument(
        "--per-plate",
        type=Path,
        metavar="FILE",
        help="also write a CSV of every labelled plate (read, confidence, exact, reported, "
        "found, alternatives) and every stray read",
    )
    ev.set_defaults(handler=cmd_eval)


def _entries(value: str) -> int:
    """``--watchlist``'s N: a whole number from 1 to 5,000,000 (a list's size, not a typo)."""
    try:
        n = int(value.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"N must be a whole number, got {value!r}") from None
    if not 1 <= n <= MAX_LIST_ENTRIES:
        raise argparse.ArgumentTypeError(f"N must be 1 to {MAX_LIST_ENTRIES:,}, got {n:,}")
    return n


class _Readers:
    """The reader for photos and the one for video frames (``reader.still_tile_above``
    and ``reader.tile_above``), each built when first needed."""

    def __init__(self, config: RaqibConfig) -> None:
        self._config = config
        self._built: dict[bool, ModelPlateReader] = {}

    def get(self, *, stills: bool) -> ModelPlateReader:
        if stills not in self._built:
            self._built[stills] = ModelPlateReader.from_config(self._config.reader, stills=stills)
        return self._built[stills]


def _frames(path: Path, every: int) -> Iterator[tuple[int, Image]]:
    import av

    try:
        with av.open(str(path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index % every == 0:
                    yield index, np.ascontiguousarray(frame.to_ndarray(format="bgr24"))
    except (av.FFmpegError, OSError) as exc:
        raise FrameError(f"cannot decode video {path}: {exc}") from exc


def _plates_json(reader: ModelPlateReader, image: Image, crops: bool) -> list[dict[str, Any]]:
    if crops:
        text, fmt, confidence = reader.read_crop(image)
        if not text:
            return []
        box = [0, 0, int(image.shape[1]), int(image.shape[0])]
        return [{"text": text, "format": fmt, "confidence": round(confidence, 4), "box": box}]
    return [
        {
            "text": r.text,
            "format": r.format,
            "confidence": round(r.confidence, 4),
            "box": list(r.box),
        }
        for r in reader.read(image)
    ]


def _emit(line: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        return
    where = line["image"] + (f" frame {line['frame']}" if "frame" in line else "")
    plates = "; ".join(
        f"{p['text']} ({p['format']}, {p['confidence']:.2f}) at {','.join(map(str, p['box']))}"
        for p in line["plates"]
    )
    sys.stdout.write(f"{where}: {plates or 'no plate'} [{line['ms']} ms]\n")


def _read_one(
    reader: ModelPlateReader, image: Image, crops: bool
) -> tuple[list[dict[str, Any]], float]:
    start = time.perf_counter()
    plates = _plates_json(reader, check_frame(image), crops)
    return plates, round((time.perf_counter() - start) * 1000, 2)


def cmd_read(args: argparse.Namespace, config: RaqibConfig) -> int:
    """``raqib read``: prints reads; exit 1 if any file could not be read."""
    if args.every < 1:
        sys.stderr.write("raqib read: --every must be at least 1\n")
        return 2
    readers = _Readers(config)
    status = EXIT_OK
    paths = []
    for given in args.paths:
        files = _files(given)
        if not files:
            sys.stderr.write(f"raqib read: no photos or videos in folder {given}\n")
            status = EXIT_ERROR
        paths += files
    for path in paths:
        name = str(path)
        try:
            if path.suffix.lower() in VIDEO_SUFFIXES and not args.crops:
                for index, frame in _frames(path, args.every):
                    plates, ms = _read_one(readers.get(stills=False), frame, False)
                    _emit({"image": name, "frame": index, "plates": plates, "ms": ms}, args.json)
            else:
                plates, ms = _read_one(readers.get(stills=True), load_image(path), args.crops)
                _emit({"image": name, "plates": plates, "ms": ms}, args.json)
        except FrameError as exc:
            sys.stderr.write(f"raqib read: {exc}\n")
            status = EXIT_ERROR
        sys.stdout.flush()
    return status


def _files(path: Path) -> list[Path]:
    """``[path]``, or for a folder its photos and videos (by suffix, sorted, not recursive)."""
    if not path.is_dir():
        return [path]
    wanted = PHOTO_SUFFIXES | VIDEO_SUFFIXES
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in wanted)


def _fmt(value: float, percent: bool) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value * 100:.1f} %" if percent else f"{value:.2f}"


def cmd_eval(args: argparse.Namespace, config: RaqibConfig) -> int:
    """``raqib eval DIR``: prints the figures; exit 1 if an image could not be read."""
    as_video = args.as_video or args.deep_reads
    per_plate = None
    if args.per_plate is not None:  # opened first: a bad path fails before the reading
        try:
            per_plate = args.per_plate.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            log.error("per-plate file not writable", extra={"path": str(args.per_plate)})
            sys.stderr.write(f"raqib eval: cannot write {args.per_plate}: {exc.strerror}\n")
            return EXIT_ERROR
    reader = ModelPlateReader.from_config(config.reader, stills=not as_video)
    deep = ModelPlateReader.from_config(config.reader, stills=True) if args.deep_reads else None
    result = evaluate_folder(reader, args.dir, deep)
    figures = result.figures()
    if args.watchlist:
        figures |= _alert_figures(result, args.watchlist, config)
    for error in result.errors:
        sys.stderr.write(f"raqib eval: {error}\n")
    if per_plate is not None:
        with per_plate:
            write_per_plate(result, per_plate)
    if args.json:
        clean = {k: (None if math.isnan(v) else round(v, 4)) for k, v in figures.items()}
        sys.stdout.write(json.dumps(clean) + "\n")
    else:
        lines = [
            f"images: {result.images} ({len(result.errors)} unreadable)",
            f"detection recall: {_fmt(figures['detection_recall'], True)} "
            f"({result.detected}/{result.boxes} boxes, IoU >= 0.5)",
            f"exact-plate accuracy: {_fmt(figures['exact_plate_accuracy'], True)} "
            f"({result.exact}/{result.plates} plates)",
            f"character accuracy: {_fmt(figures['character_accuracy'], True)}",
            f"ms per image: {_fmt(figures['ms_per_image'], False)}",
        ]
        if args.watchlist:
            lines += _alert_lines(figures)
        sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_ERROR if result.errors else EXIT_OK


def _alert_figures(result: EvalResult, entries: int, config: RaqibConfig) -> dict[str, float]:
    from agent.reader.alert_check import alert_figures
    from agent.watchlist.bench import generate_entries
    from agent.watchlist.matcher import MatchPolicy

    cfg = config.watchlist
    policy = MatchPolicy(cfg.fuzzy, cfg.fuzzy_min_confidence, cfg.edits, cfg.fuzzy_max_changes)
    return alert_figures(result.reads, result.stray, generate_entries(entries), policy)


def _alert_lines(figures: dict[str, float]) -> list[str]:
    plates = int(figures["alert_plates"])
    entries = int(figures["watchlist_entries"])

    def share(key: str) -> str:
        value = figures[key]
        return f"{_fmt(value, True)} ({round(value * plates)}/{plates} plates)"

    return [
        f"would alert, plate listed among {entries:,} entries: {share('alert_listed_rate')}",
        f"would alert on another listed plate: {share('alert_misdirected_rate')}",
        f"would alert, plate not listed: {share('alert_unlisted_rate')}",
        f"texts read away from the labelled plates that alert: "
        f"{int(figures['stray_alerts'])} of {int(figures['stray_reads'])}",
    ]
