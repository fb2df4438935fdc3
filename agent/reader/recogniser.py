"""The plate recogniser: a plate crop in, raw token text and a confidence out.

Model contract (``recogniser.tflite`` + ``recogniser.json`` beside it, written
by models/train_recogniser.py): input ``1 x H x W x 1`` uint8 grayscale (the
crop resized with area interpolation, no normalisation: the model rescales),
output ``1 x T x C`` int8 logits, class 0 the CTC blank, class ``i + 1`` the
``i``-th character of ``charset``.

Decoding: greedy best path; when its text is no valid Moroccan or French
plate, the best path that fits a plate layout (``agent.reader.ctc.
constrained_decode``) is taken instead, with its own confidence. The
model's probabilities decide; nothing is guessed from outside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.errors import ModelError
from agent.frames import Image
from agent.reader.backend import QuantizedModel
from agent.reader.ctc import PlateGrammar, constrained_decode, greedy_decode, softmax
from agent.reader.plate_text import canonicalize, is_valid


def _load_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"model metadata {path} not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model metadata {path} is unreadable: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("charset"), str):
        raise ModelError(f"model metadata {path} has no charset")
    if meta.get("blank_index", 0) != 0:
        raise ModelError(f"model metadata {path}: only blank_index 0 is supported")
    return meta


class Recogniser:
    """Reads the characters of one plate crop with the int8 CTC model."""

    def __init__(self, model_path: Path, num_threads: int = 1, *, constrained: bool = True) -> None:
        meta = _load_meta(model_path.with_suffix(".json"))
        self.charset: str = meta["charset"]
        self.version: str = str(meta.get("version", "unknown"))
        self._model = QuantizedModel(model_path, num_threads)
        shape = self._model.input_shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 1:
            raise ModelError(f"recogniser {model_path} must take 1 x H x W x 1, takes {shape}")
        out = self._model.output_shape
        if len(out) != 3 or out[2] != len(self.charset) + 1:
            raise ModelError(
                f"recogniser {model_path} outputs {out}, expected 1 x T x {len(self.charset) + 1}"
            )
        self.input_size: tuple[int, int] = (shape[1], shape[2])  # height, width
        self._input = np.zeros(shape, np.uint8)
        self._resized = self._input[0, :, :, 0]  # a view: resizing writes the model input
        self._probs = np.empty(out[1:], np.float32)
        self._grammar = PlateGrammar(self.charset) if constrained else None

    def read(self, crop: Image) -> tuple[str, float]:
        """Raw token text (digits, Latin and Arabic letters) and confidence of a BGR crop."""
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] < 2 or crop.shape[1] < 2:
            raise ValueError(f"crop must be H x W x 3 with H, W >= 2, got {crop.shape}")
        gray = np.asarray(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        return self.read_gray(gray)

    def read_gray(self, gray: npt.NDArray[np.uint8]) -> tuple[str, float]:
        """Same as :meth:`read` for a grayscale crop."""
        height, width = self.input_size
        resized = cv2.resize(gray, (width, height), dst=self._resized, interpolation=cv2.INTER_AREA)
        if resized is not self._resized:  # OpenCV allocated after all: copy into the input
            np.copyto(self._resized, resized)
        logits = self._model.invoke(self._input)
        softmax(logits[0], out=self._probs)
        raw, confidence = greedy_decode(self._probs, self.charset, probabilities=True)
        if self._grammar is None or _is_plate(raw):
            return raw, confidence
        # Greedy text fits no plate layout: the best path that does (usually one
        # dropped or doubled character, or the thin alif read as "1").
        fitted, fitted_conf = constrained_decode(self._probs, self.charset, self._grammar)
        return (fitted, fitted_conf) if fitted else (raw, confidence)


def _is_plate(raw: str) -> bool:
    text, fmt = canonicalize(raw)
    return fmt in ("MA", "FR") and is_valid(text, fmt)
