"""What both training scripts share: their common options, output paths and metadata file.

Each script adds its own options (data sizes, thresholds) to
:func:`training_parser` and keeps its own defaults; the names and meanings of
the shared options are the same for both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import parallel
import realdata

ROOT = Path(__file__).resolve().parent.parent

ONEDNN_MACHINES: Final = frozenset({"x86_64", "AMD64"})
"""CPUs whose training runs TensorFlow's oneDNN kernels (``TF_ENABLE_ONEDNN_OPTS=1``)."""


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
    tensorflow_settings(os.environ, platform.machine())
    work = args.out / ".work" / args.name
    work.mkdir(parents=True, exist_ok=True)
    use_real = realdata.available(args.datasets)
    if not use_real:
        print(f"no real datasets at {args.datasets}: training on {without_real} only", flush=True)
    return Outputs(work, args.out / f"{args.name}.tflite", use_real)


def tensorflow_settings(environ: MutableMapping[str, str], machine: str) -> None:
    """Set TensorFlow's environment in ``environ`` before it is imported, keeping what the
    user already set: its C++ log quiet, and on x86-64 (``machine``) its oneDNN kernels on.
    TensorFlow 2.21 chooses oneDNN by itself on some CPUs only: it did on the AVX-512 VMs the
    shipped files were trained on, not on an AVX2-only one, where a training step of the
    recogniser then took 1.4x and one of the detector 1.6x as long (models/README.md,
    "oneDNN on AVX2-only CPUs")."""
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if machine in ONEDNN_MACHINES:
        environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def write_meta(tflite: Path, meta: dict[str, Any]) -> None:
    """The model's JSON beside its ``.tflite`` (the runtime's contract and the figures)."""
    tflite.with_suffix(".json").write_text(
        json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
