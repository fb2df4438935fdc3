"""Estimates the plate reader's time per 720p frame and the pipeline's fps on a Pi 4 and a Pi 5.

No Raspberry Pi is at hand, so the estimate is built from figures that can each
be checked, and is recomputed from the model files whenever they change:

1. **What the models ask for.** Every operator of the given ``.tflite`` files
   (read by the TFLite interpreter without delegates) with its int8
   multiply-accumulates (convolutions, depthwise convolutions, fully connected)
   or the elements it writes (everything else).
2. **How the reader uses them, measured here.** The whole reader on the first
   frames of ``samples/street_clip.mp4``: calls of each model per frame and the
   CPU time per frame outside the models (OpenCV resizing and cropping, box and
   CTC decoding, Python). Each model and a reference (MobileNet v1 1.0 224 int8,
   built here once with TensorFlow from random weights and cached in
   ``models/.work/``, or ``--reference``) are timed alone. All times are the
   thread's CPU time, so other jobs on a busy machine do not inflate them.
3. **A per-operator cost model, calibrated here.** Dense convolutions at the
   recogniser's measured rate here; depthwise convolutions at the rate left by
   the reference once its dense part is taken out; element operations and
   per-operator overhead at the cost left by the detector once its
   convolutions are taken out. The model reproduces each model's time here.
4. **The Pi cores' published speed.** MobileNet v1 int8 (569 M MACs, 95 % in 1x1
   convolutions) on one Cortex-A72 at 1.8 GHz: 84.8 ms (ncnn's benchmark table,
   Raspberry Pi 4 Model B BCM2711B0 at 1.8 GHz, ``mobilenet_int8``, 1 thread);
   XNNPACK's own table (Pi 4 at 1.5 GHz, 4 threads, float MobileNet v1: 75 ms)
   scaled by ncnn's measured 4-thread gain (2.0x), clock (1.2x) and int8 gain
   (1.47x) gives ~86 ms: the two agree within 2 %. Split by operator type:
   dense convolutions 7.25 G MAC/s, depthwise 2 G MAC/s. Element operations,
   operator overhead and code outside the models: this machine's calibrated
   cost times ``PI4_GENERAL_SLOWDOWN`` (6x, range 4.5-8x: single-core general
   speed of a current Xeon core against a Cortex-A72 at 1.8 GHz, Geekbench-class
   ratios; the least certain input, so its range is carried through). Pi 5
   (Cortex-A76 2.4 GHz) against Pi 4: int8 convolutions 3.0x (range 2.5-4.0x:
   clock 1.33x, per-clock NEON ~1.35x, and the SDOT dot-product kernels XNNPACK
   uses on the A76 where the A72 has only widening multiply-adds, 1.6-2x);
   everything else 2.2x (clock and IPC).

The reader runs on one core (``reader.num_threads = 1``); capture, recorder and
uplink have the other three, so pipeline fps = min(camera fps, reader fps).

    .venv/bin/python scripts/pi_estimate.py [--detector PATH] [--recogniser PATH]
        [--frames 150] [--reference PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import DEFAULT_MODELS_DIR, DEFAULT_SAMPLES_DIR, ReaderConfig, load_config

PI4_REFERENCE_MS = 84.8
"""ncnn benchmark README, Raspberry Pi 4 Model B BCM2711B0 Cortex-A72 1.8 GHz, 1 thread,
``mobilenet_int8`` average (the XNNPACK README's fp32 figure, scaled, gives ~86 ms);
``PI4_CONV_GMACS`` and ``PI4_DEPTHWISE_GMACS`` are its split by operator type."""
PI5_OVER_PI4_NN = (2.5, 3.0, 4.0)
"""Pi 5 / Pi 4 speed on int8 convolutions: low, central, high."""
PI5_OVER_PI4_OTHER = 2.2
"""Pi 5 / Pi 4 on code outside the models (clock 1.33x, per-clock ~1.65x)."""
CAMERA_FPS = 25.0
TARGET_READER_FPS = 15.0
WORK_DIR = Path(__file__).resolve().parent.parent / "models" / ".work"


# -- 1. what the models ask for ------------------------------------------------------------


@dataclass
class OpCount:
    ops: int = 0
    macs: int = 0
    elements: int = 0


def count_ops(path: Path) -> dict[str, OpCount]:
    """Operators by type with their MACs (convolutions, FC) or output elements (others)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in interp.get_tensor_details()}
    counts: dict[str, OpCount] = defaultdict(OpCount)
    for op in interp._get_ops_details():
        name = op["op_name"]
        out = shapes.get(int(op["outputs"][0]), ()) if len(op["outputs"]) else ()
        inputs = [shapes.get(int(i), ()) for i in op["inputs"] if int(i) >= 0]
        count = counts[name]
        count.ops += 1
        count.macs += _macs(name, inputs, out)
        count.elements += int(np.prod(out)) if out else 0
    return dict(counts)


def _macs(name: str, inputs: list[tuple[int, ...]], out: tuple[int, ...]) -> int:
    if name == "CONV_2D" and len(inputs) >= 2 and len(out) == 4:
        out_c, kh, kw, in_c = inputs[1]
        return out[0] * out[1] * out[2] * out_c * kh * kw * in_c
    if name == "DEPTHWISE_CONV_2D" and len(inputs) >= 2 and len(out) == 4:
        _, kh, kw, channels = inputs[1]
        return out[0] * out[1] * out[2] * channels * kh * kw
    if name == "FULLY_CONNECTED" and len(inputs) >= 2 and out:
        units, depth = inputs[1][0], inputs[1][-1]
        return int(np.prod(out[:-1])) * units * depth
    return 0


# -- 2. what they take here -----------------------------------------------------------------


def time_model(path: Path, runs: int = 40) -> float:
    """Median CPU ms of one invoke, one thread, XNNPACK, on a random input of the model's type."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    rng = np.random.default_rng(0)
    dtype = np.dtype(detail["dtype"])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, size=detail["shape"], dtype=dtype)
    else:
        data = rng.random(size=detail["shape"]).astype(dtype)
    times = []
    for i in range(runs + 5):
        interp.set_tensor(detail["index"], data)
        start = time.thread_time()
        interp.invoke()
        if i >= 5:
            times.append((time.thread_time() - start) * 1000)
    return statistics.median(times)


@dataclass
class ReaderTiming:
    frames: int
    frame_ms: float
    model_ms: dict[str, float] = field(default_factory=dict)
    """ms per frame inside each model file (all its calls in that frame)."""
    calls_per_frame: dict[str, float] = field(default_factory=dict)

    @property
    def other_ms(self) -> float:
        return max(0.0, self.frame_ms - sum(self.model_ms.values()))


def time_reader(
    models_dir: Path,
    frames: int,
    *,
    grey_pass: bool = True,
    second_look: bool = True,
    recognisers: int | None = None,
    doubt: tuple[float, float] | None = None,
    reader_config: ReaderConfig | None = None,
) -> ReaderTiming:
    """The whole reader on the clip's first frames, with the time inside each model apart
    (``second_look`` False: ``reader.zooms = []``; ``recognisers`` and ``doubt``:
    ``reader.recognisers`` and ``reader.recognisers_doubt``, the ensemble members reading
    each plate of a video frame; None: as shipped). ``reader_config``: the ``[reader]``
    section to time instead of the defaults (a deployment's), read on one thread with the
    model detector, the other arguments applied on top of it."""
    from agent.reader import backend
    from agent.reader.pipeline import MORE_RECOGNISER_FILES, RECOGNISER_FILE, ModelPlateReader

    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    original = backend.QuantizedModel.invoke

    def timed_invoke(self: Any, data: Any) -> Any:
        # the ensemble's members share the recogniser's architecture: their runs count as its
        name = RECOGNISER_FILE if self.path.name in MORE_RECOGNISER_FILES else self.path.name
        start = time.thread_time()
        try:
            return original(self, data)
        finally:
            spent[name] += (time.thread_time() - start) * 1000
            calls[name] += 1

    chosen = {"recognisers": recognisers, "recognisers_doubt": doubt}
    base = reader_config if reader_config is not None else ReaderConfig()
    config = base.model_copy(
        update={
            "models_dir": models_dir,
            "detector": "model",
            "num_threads": 1,
            "grey_pass": grey_pass and base.grey_pass,
            **{key: value for key, value in chosen.items() if value is not None},
        }
    )
    if not second_look:
        config = config.model_copy(update={"zooms": []})
    reader = ModelPlateReader.from_config(config)
    images = list(_clip_frames(frames))
    for image in images[:5]:  # warm-up
        reader.read(image)
    backend.QuantizedModel.invoke = timed_invoke  # type: ignore[method-assign]
    try:
        start = time.thread_time()
        for image in images:
            reader.read(image)
        total = (time.thread_time() - start) * 1000
    finally:
        backend.QuantizedModel.invoke = original  # type: ignore[method-assign]
    n = len(images)
    return ReaderTiming(
        frames=n,
        frame_ms=total / n,
        model_ms={name: ms / n for name, ms in spent.items()},
        calls_per_frame={name: c / n for name, c in calls.items()},
    )


def _clip_frames(count: int) -> Iterator[Any]:
    from agent.capture.replay import VideoFileSource

    source = VideoFileSource(DEFAULT_SAMPLES_DIR / "street_clip.mp4")
    for frame in source.frames():
        if frame.index >= count:
            break
        yield frame.image
    source.close()


def reference_model(given: Path | None) -> Path:
    """MobileNet v1 1.0 224 int8: the given file, the cached one, or built with TensorFlow."""
    if given is not None:
        return given
    cached = WORK_DIR / "reference" / "mobilenet_v1_1.0_224_int8.tflite"
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(_build_reference())
    return cached


def _build_reference() -> bytes:
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise SystemExit(
            "the reference model needs TensorFlow once: pip install 'raqib[train]', "
            "or pass --reference mobilenet_v1_1.0_224_int8.tflite"
        ) from exc
    model = tf.keras.applications.MobileNet(weights=None, input_shape=(224, 224, 3))
    rng = np.random.default_rng(0)

    def samples() -> Iterator[list[Any]]:
        for _ in range(8):
            yield [rng.random((1, 224, 224, 3), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    data: bytes = converter.convert()
    return data


# -- 3. and 4. the cost model and the estimate ----------------------------------------------

FREE_OPS = frozenset({"RESHAPE", "EXPAND_DIMS", "SHAPE", "STRIDED_SLICE", "PACK", "SQUEEZE"})
"""Operators that only relabel a tensor (no data is moved)."""
CONV_OPS = frozenset({"CONV_2D", "FULLY_CONNECTED"})
PI4_CONV_GMACS = 7.25
PI4_DEPTHWISE_GMACS = 2.0
"""Cortex-A72 1.8 GHz, one thread: these two reproduce MobileNet v1 int8's 84.8 ms."""
PI4_GENERAL_SLOWDOWN = (4.5, 6.0, 8.0)
"""This machine's core against a Cortex-A72 at 1.8 GHz on general code: low, central, high."""


@dataclass(frozen=True)
class CoreSpeed:
    """One core's speed per operator type."""

    conv_gmacs: float
    depthwise_gmacs: float
    ns_per_element: float

    def model_ms(self, ops: dict[str, OpCount]) -> float:
        total_ns = 0.0
        for name, count in ops.items():
            if name in FREE_OPS:
                continue
            if name in CONV_OPS:
                total_ns += count.macs / self.conv_gmacs
            elif name == "DEPTHWISE_CONV_2D":
                total_ns += count.macs / self.depthwise_gmacs
            else:
                total_ns += count.elements * self.ns_per_element
        return total_ns / 1e6


def _sum_macs(ops: dict[str, OpCount], names: frozenset[str]) -> int:
    return sum(c.macs for n, c in ops.items() if n in names)


def _elements(ops: dict[str, OpCount]) -> int:
    skip = FREE_OPS | CONV_OPS | {"DEPTHWISE_CONV_2D"}
    return sum(c.elements for n, c in ops.items() if n not in skip)


def calibrate_here(
    recogniser: tuple[dict[str, OpCount], float],
    reference: tuple[dict[str, OpCount], float],
    detector: tuple[dict[str, OpCount], float],
) -> CoreSpeed:
    """This machine's per-operator speed, fitted to the measured (ops, ms) of three models."""
    rec_ops, rec_ms = recogniser
    conv = _sum_macs(rec_ops, CONV_OPS) / (rec_ms * 1e6)
    ref_ops, ref_ms = reference
    depthwise_ms = max(1e-3, ref_ms - _sum_macs(ref_ops, CONV_OPS) / conv / 1e6)
    depthwise = _sum_macs(ref_ops, frozenset({"DEPTHWISE_CONV_2D"})) / (depthwise_ms * 1e6)
    det_ops, det_ms = detector
    conv_ms = _sum_macs(det_ops, CONV_OPS) / conv / 1e6
    dw_ms = _sum_macs(det_ops, frozenset({"DEPTHWISE_CONV_2D"})) / depthwise / 1e6
    rest_ms = max(0.0, det_ms - conv_ms - dw_ms)
    return CoreSpeed(conv, depthwise, rest_ms * 1e6 / max(1, _elements(det_ops)))


@dataclass
class Estimate:
    board: str
    reader_ms: float
    reader_ms_range: tuple[float, float]
    model_ms: dict[str, float]
    other_ms: float

    @property
    def reader_fps(self) -> float:
        return 1000.0 / self.reader_ms

    @property
    def pipeline_fps(self) -> float:
        """The reader has a core of its own (capture, recorder, uplink on the others)."""
        return min(CAMERA_FPS, self.reader_fps)


def board_core(here: CoreSpeed, board: str, conv_scale: float, slowdown: float) -> CoreSpeed:
    """The Pi 4 (or Pi 5: ``conv_scale`` and the general speed-up applied) core."""
    other_scale = 1.0 if board == "pi4" else PI5_OVER_PI4_OTHER
    return CoreSpeed(
        PI4_CONV_GMACS * conv_scale,
        PI4_DEPTHWISE_GMACS * other_scale,
        here.ns_per_element * slowdown / other_scale,
    )


def estimate(
    counts: dict[str, dict[str, OpCount]], timing: ReaderTiming, here: CoreSpeed
) -> list[Estimate]:
    """Reader ms per frame on each board: its models' calls per frame plus the code outside."""
    low_slow, mid_slow, high_slow = PI4_GENERAL_SLOWDOWN
    low5, mid5, high5 = PI5_OVER_PI4_NN
    cases = {  # board: (central, fast, slow) as (conv scale, general slowdown)
        "pi4": ((1.0, mid_slow), (1.2, low_slow), (0.8, high_slow)),
        "pi5": ((mid5, mid_slow), (high5, low_slow), (low5, high_slow)),
    }
    out = []
    for board, variants in cases.items():
        totals = []
        for conv_scale, slowdown in variants:
            core = board_core(here, board, conv_scale, slowdown)
            other_scale = 1.0 if board == "pi4" else PI5_OVER_PI4_OTHER
            other = timing.other_ms * slowdown / other_scale
            per_model = {
                name: core.model_ms(ops) * timing.calls_per_frame.get(name, 0.0)
                for name, ops in counts.items()
            }
            totals.append((sum(per_model.values()) + other, per_model, other))
        (total, per_model, other), fast, slow = totals
        out.append(Estimate(board, total, (fast[0], slow[0]), per_model, other))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--detector", type=Path, default=DEFAULT_MODELS_DIR / "detector.tflite")
    parser.add_argument("--recogniser", type=Path, default=DEFAULT_MODELS_DIR / "recogniser.tflite")
    parser.add_argument("--reference", type=Path, help="MobileNet v1 1.0 224 int8 .tflite")
    parser.add_argument("--frames", type=int, default=150, help="clip frames for the reader")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument(
        "--no-grey-pass",
        action="store_true",
        help="estimate with reader.grey_pass = false (one detector pass per frame)",
    )
    parser.add_argument(
        "--no-second-look",
        action="store_true",
        help="estimate with reader.zooms = [] (no second look at the best boxes)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="an agent config file whose [reader] section is estimated (e.g. "
        "deploy/agent.example.toml, the Pi 4 settings); one reader thread whatever it says",
    )
    args = parser.parse_args(argv)
    reader_config = load_config(args.config).reader if args.config is not None else None
    models_dir = _models_dir(args.detector, args.recogniser)
    paths = {"detector.tflite": args.detector, "recogniser.tflite": args.recogniser}
    counts = {name: count_ops(path) for name, path in paths.items()}
    invoke_ms = {name: time_model(path) for name, path in paths.items()}
    reference = reference_model(args.reference)
    reference_ops = count_ops(reference)
    reference_ms = time_model(reference, runs=20)
    here = calibrate_here(
        (counts["recogniser.tflite"], invoke_ms["recogniser.tflite"]),
        (reference_ops, reference_ms),
        (counts["detector.tflite"], invoke_ms["detector.tflite"]),
    )
    timing = time_reader(
        models_dir,
        args.frames,
        grey_pass=not args.no_grey_pass,
        second_look=not args.no_second_look,
        reader_config=reader_config,
    )
    boards = estimate(counts, timing, here)
    result = _report(counts, invoke_ms, (reference_ms, here), timing, boards)
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result, counts)
    return 0


def _models_dir(detector: Path, recogniser: Path) -> Path:
    """The reader loads ``detector.tflite`` and ``recogniser.tflite`` from one directory."""
    if detector.parent != recogniser.parent or detector.name != "detector.tflite":
        staged = WORK_DIR / "pi-estimate-models"
        staged.mkdir(parents=True, exist_ok=True)
        for src, name in ((detector, "detector.tflite"), (recogniser, "recogniser.tflite")):
            (staged / name).write_bytes(src.read_bytes())
            meta = src.with_suffix(".json")
            if meta.exists():
                (staged / name).with_suffix(".json").write_bytes(meta.read_bytes())
        return staged
    return detector.parent


def _report(
    counts: dict[str, dict[str, OpCount]],
    invoke_ms: dict[str, float],
    calibration: tuple[float, CoreSpeed],
    timing: ReaderTiming,
    boards: list[Estimate],
) -> dict[str, Any]:
    reference_ms, here = calibration
    out: dict[str, Any] = {
        "x86_reference_ms": round(reference_ms, 2),
        "x86_conv_gmacs": round(here.conv_gmacs, 1),
        "x86_depthwise_gmacs": round(here.depthwise_gmacs, 1),
        "x86_ns_per_element": round(here.ns_per_element, 3),
        "x86_frame_ms": round(timing.frame_ms, 2),
        "x86_other_ms": round(timing.other_ms, 2),
        "frames": timing.frames,
    }
    pi4 = board_core(here, "pi4", 1.0, PI4_GENERAL_SLOWDOWN[1])
    for name, ops in counts.items():
        key = name.removesuffix(".tflite")
        out[f"{key}_mmacs"] = round(sum(c.macs for c in ops.values()) / 1e6, 2)
        out[f"{key}_x86_invoke_ms"] = round(invoke_ms[name], 3)
        out[f"{key}_x86_model_ms"] = round(here.model_ms(ops), 3)
        out[f"{key}_calls_per_frame"] = round(timing.calls_per_frame.get(name, 0.0), 2)
        out[f"{key}_pi4_invoke_ms"] = round(pi4.model_ms(ops), 2)
    for board in boards:
        out[f"{board.board}_reader_ms"] = round(board.reader_ms, 1)
        out[f"{board.board}_reader_ms_low"] = round(board.reader_ms_range[0], 1)
        out[f"{board.board}_reader_ms_high"] = round(board.reader_ms_range[1], 1)
        out[f"{board.board}_reader_fps"] = round(board.reader_fps, 1)
        out[f"{board.board}_reader_fps_range"] = [
            round(1000 / board.reader_ms_range[1], 1),
            round(1000 / board.reader_ms_range[0], 1),
        ]
        out[f"{board.board}_pipeline_fps"] = round(board.pipeline_fps, 1)
        for name, ms in board.model_ms.items():
            out[f"{board.board}_{name.removesuffix('.tflite')}_ms_per_frame"] = round(ms, 2)
        out[f"{board.board}_other_ms"] = round(board.other_ms, 2)
    out["pi4_meets_15fps"] = boards[0].reader_fps >= TARGET_READER_FPS
    return out


def _print_table(result: dict[str, Any], counts: dict[str, dict[str, OpCount]]) -> None:
    for name, ops in counts.items():
        print(f"{name}:")
        for op, c in sorted(ops.items(), key=lambda kv: -kv[1].macs):
            print(f"  {op:<22} {c.ops:>3} ops  {c.macs / 1e6:>9.2f} M MACs  {c.elements:>9} out")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    raise SystemExit(main())
