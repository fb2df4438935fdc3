"""What both training scripts share: their common options, output paths and metadata file.

Each script adds its own options (data sizes, thresholds) to
:func:`training_parser` and keeps its own defaults; the names and meanings of
the shared options are the same for both.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import parallel
import realdata

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Defaults:
    """One script's defaults for the shared options."""

    name: str
    seed: int
    epochs: int
    finetune_epochs: int
    batch: int
    lr: float
    finetune_lr: float = 1e-3


def training_parser(description: str, defaults: Defaults) -> argparse.ArgumentParser:
    """A parser with the options every training script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=ROOT / "models")
    parser.add_argument("--datasets", type=Path, default=realdata.DEFAULT_DATASETS)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--finetune-epochs", type=int, default=defaults.finetune_epochs)
    parser.add_argument("--finetune-lr", type=float, default=defaults.finetune_lr)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip stage 1: fine-tune <out>/.work/<name>/'s stage 1 model",
    )
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow threads")
    parser.add_argument(
        "--workers",
        type=int,
        default=parallel.default_workers(),
        help="processes rendering synthetic samples (the samples do not depend on it)",
    )
    parser.add_argument("--name", default=defaults.name, help="output file stem")
    parser.add_argument("--eval-only", action="store_true", help="evaluate an existing .tflite")
    return parser


@dataclass(frozen=True)
class Outputs:
    """Where a run writes, and whether the real data sets take part."""

    work: Path
    """Working files (Keras weights, SavedModels): ``<out>/.work/<name>/``, git-ignored; one
    folder per output name, so that two models (the recogniser ensemble's members) can
    train side by side into one ``<out>``."""
    tflite: Path
    use_real: bool


def prepare(args: argparse.Namespace, without_real: str) -> Outputs:
    """Create the output folders; say so when the real sets are missing (``without_real``:
    what the script trains on then)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = args.out / ".work" / args.name
    work.mkdir(parents=True, exist_ok=True)
    use_real = realdata.available(args.datasets)
    if not use_real:
        print(f"no real datasets at {args.datasets}: training on {without_real} only", flush=True)
    return Outputs(work, args.out / f"{args.name}.tflite", use_real)


def write_meta(tflite: Path, meta: dict[str, Any]) -> None:
    """The model's JSON beside its ``.tflite`` (the runtime's contract and the figures)."""
    tflite.with_suffix(".json").write_text(
        json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
