"""``raqib bench reader``: speed of the plate reader on this machine.

Figures (one interpreter thread, as on the device's reader core):

- ``ocr_ms_p50`` / ``ocr_ms_p99``: recogniser per plate crop (grayscale,
  resize, int8 inference, CTC decoding, canonical text), on freshly rendered
  synthetic crops;
- ``ocr_two_line_ms_p50``: the same for rendered two-line plates (Moroccan
  imports and motorcycles), read as two lines first (``Recogniser.read_best``);
- ``frame_ms_p50`` / ``frame_ms_p99``: the whole reader (detector + recogniser
  on every detected box) per 1280 x 720 frame of the sample clip;
- ``pipeline_fps``: frames per second through capture -> reader -> tracker ->
  matcher on the sample clip (two threads: decoding and reading), from the
  ``pipeline`` section.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from agent.config import DEFAULT_SAMPLES_DIR, RaqibConfig
from agent.frames import Image
from agent.reader.pipeline import ModelPlateReader, crop_box

OCR_SAMPLES = 300
FRAME_SAMPLES = 150


SAMPLE_CLIP = DEFAULT_SAMPLES_DIR / "street_clip.mp4"


def _clip_frames(limit: int) -> list[Image]:
    import av

    frames: list[Image] = []
    with av.open(str(SAMPLE_CLIP)) as container:
        for frame in container.decode(video=0):
            frames.append(np.ascontiguousarray(frame.to_ndarray(format="bgr24")))
            if len(frames) >= limit:
                break
    return frames


def _crops(n: int) -> list[Image]:
    from agent.synth.plates import random_plate_text, render_plate

    rng = np.random.default_rng(99)
    crops = []
    for i in range(n):
        plate = render_plate(random_plate_text(rng, "MA" if i % 2 else "FR"), rng, height=36)
        h, w = plate.shape[:2]
        scene = np.full((h * 2, w + 40, 3), 40, np.uint8)
        scene[h // 2 : h // 2 + h, 20 : 20 + w] = plate
        crops.append(crop_box(scene, (20, h // 2, w, h))[0])
    return crops


def _two_line_crops(n: int) -> list[Image]:
    """Rendered two-line Moroccan car and motorcycle plates, cropped like the runtime."""
    from agent.synth.augment import clean_plate_crop, random_training_plate

    rng = np.random.default_rng(98)
    crops: list[Image] = []
    while len(crops) < n:
        text, two_line = random_training_plate(rng)
        if two_line:
            crops.append(clean_plate_crop(text, rng, two_line=True))
    return crops


def _time_calls(call: Callable[[Image], object], images: list[Image], warm_up: int) -> list[float]:
    """Seconds per ``call(image)``, after ``warm_up`` untimed calls on the first images."""
    for image in images[:warm_up]:
        call(image)
    times = []
    for image in images:
        start = time.perf_counter()
        call(image)
        times.append(time.perf_counter() - start)
    return times


def _percentiles(times: list[float]) -> tuple[float, float]:
    ms = np.asarray(times) * 1000
    return round(float(np.percentile(ms, 50)), 3), round(float(np.percentile(ms, 99)), 3)


def bench_reader(config: RaqibConfig) -> dict[str, float]:
    """The reader figures above; ``pipeline_fps`` comes from ``agent.bench.bench_pipeline``."""
    cfg = config.reader.model_copy(update={"num_threads": 1})
    reader = ModelPlateReader.from_config(cfg)
    crops = _crops(OCR_SAMPLES)
    ocr_p50, ocr_p99 = _percentiles(_time_calls(reader.read_crop, crops, warm_up=20))
    two_line = _time_calls(reader.read_crop, _two_line_crops(100), warm_up=20)
    two_line_p50, _ = _percentiles(two_line)
    frames = _clip_frames(FRAME_SAMPLES)
    frame_p50, frame_p99 = _percentiles(_time_calls(reader.read, frames, warm_up=5))
    from agent.bench import bench_pipeline

    pipeline = bench_pipeline(config)
    return {
        "ocr_ms_p50": ocr_p50,
        "ocr_ms_p99": ocr_p99,
        "ocr_two_line_ms_p50": two_line_p50,
        "frame_ms_p50": frame_p50,
        "frame_ms_p99": frame_p99,
        "frame_width": float(frames[0].shape[1]) if frames else 0.0,
        "frame_height": float(frames[0].shape[0]) if frames else 0.0,
        "pipeline_fps": float(pipeline["pipeline_fps"]),
    }
