"""Synthetic plates and the sample clip: deterministic, the right shapes, truthful."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from agent.reader.plate_text import canonicalize, is_valid
from agent.reads import PlateFormat
from agent.synth import (
    add_noise,
    adjust_brightness,
    blur,
    jpeg_roundtrip,
    perspective_jitter,
    random_plate_text,
    render_plate,
    training_crop,
)
from agent.synth.clip import render_clip

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.mark.parametrize("fmt", ["MA", "FR"])
def test_same_seed_gives_same_text_and_pixels(fmt: PlateFormat) -> None:
    a, b = np.random.default_rng(11), np.random.default_rng(11)
    text_a, text_b = random_plate_text(a, fmt), random_plate_text(b, fmt)
    assert text_a == text_b
    assert np.array_equal(render_plate(text_a, a, height=40), render_plate(text_b, b, height=40))
    assert np.array_equal(training_crop(text_a, a), training_crop(text_b, b))


def test_different_seeds_give_different_plates() -> None:
    texts = {random_plate_text(np.random.default_rng(s), "MA") for s in range(20)}
    assert len(texts) > 15


@pytest.mark.parametrize("fmt", ["MA", "FR"])
def test_generated_texts_are_valid_canonical_plates(fmt: PlateFormat) -> None:
    rng = np.random.default_rng(5)
    for _ in range(100):
        assert is_valid(random_plate_text(rng, fmt), fmt)


@pytest.mark.parametrize(
    ("text", "height"), [("12345-B-6", 30), ("AB-123-CD", 110), ("7-Y-89", 64)]
)
def test_rendered_plate_is_bgr_uint8_with_the_real_aspect_ratio(text: str, height: int) -> None:
    img = render_plate(text, np.random.default_rng(0), height=height)
    assert img.dtype == np.uint8
    assert img.shape == (height, round(520 * height / 110), 3)
    assert img.flags.c_contiguous


def test_french_plate_has_a_blue_band_on_the_left_and_white_middle() -> None:
    img = render_plate("AB-123-CD", np.random.default_rng(0), height=110).astype(int)
    band = img[20:90, 8:30]
    assert (band[..., 0] - band[..., 2]).mean() > 100  # blue in BGR
    assert img[5:15, 200:300].mean() > 200


def test_render_plate_refuses_non_canonical_or_unsupported_text() -> None:
    rng = np.random.default_rng(0)
    for bad in ("12345B6", "ab-123-cd", "123-AB-45", "HELLO"):
        with pytest.raises(ValueError, match="canonical"):
            render_plate(bad, rng)


def test_training_crop_is_gray_at_the_model_input_size() -> None:
    crop = training_crop("12345-B-6", np.random.default_rng(0), 32, 128)
    assert crop.shape == (32, 128)
    assert crop.dtype == np.uint8


def test_augmentations_keep_shape_and_dtype() -> None:
    rng = np.random.default_rng(2)
    img = render_plate("AB-123-CD", rng, height=40)
    for fn in (perspective_jitter, blur, add_noise, adjust_brightness, jpeg_roundtrip):
        out = fn(img, rng)
        assert out.shape == img.shape
        assert out.dtype == np.uint8


def test_small_clip_has_truth_boxes_inside_the_frame_and_at_most_two_cars(tmp_path: Path) -> None:
    mp4, truth_path = tmp_path / "c.mp4", tmp_path / "c.truth.json"
    truth = render_clip(mp4, truth_path, seed=3, n_vehicles=3, interval=16)
    assert json.loads(truth_path.read_text(encoding="utf-8")) == truth
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 1280, 720)
        n_frames = sum(1 for _ in container.decode(stream))
    assert n_frames == truth["frames"]
    assert len(truth["vehicles"]) == 3
    per_frame: dict[str, int] = {}
    for v in truth["vehicles"]:
        assert is_valid(v["plate"], v["format"])
        assert v["first_frame"] == min(map(int, v["boxes"]))
        for frame, (x, y, w, h) in v["boxes"].items():
            assert x >= 0 and x + w <= 1280 and y >= 0 and y + h <= 720
            assert 110 <= w <= 210
            per_frame[frame] = per_frame.get(frame, 0) + 1
    assert max(per_frame.values()) <= 2


def test_shipped_sample_clip_matches_its_truth_and_is_small() -> None:
    truth = json.loads((SAMPLES / "street_clip.truth.json").read_text(encoding="utf-8"))
    assert (truth["fps"], truth["width"], truth["height"]) == (25, 1280, 720)
    assert len(truth["vehicles"]) == 8
    assert {v["format"] for v in truth["vehicles"]} == {"MA", "FR"}
    assert (SAMPLES / "street_clip.mp4").stat().st_size < 3_000_000


def test_training_plates_cover_the_special_series_and_are_deterministic() -> None:
    from agent.synth.augment import random_training_text, render_training_plate

    rng = np.random.default_rng(4)
    texts = [random_training_text(rng) for _ in range(400)]
    assert any(t.endswith("-WW") for t in texts)  # temporary series
    assert any(t[0].isdigit() and canonicalize(t)[1] == "FR" for t in texts)  # old FNI
    for text in texts[:40]:
        assert canonicalize(text) == (text, canonicalize(text)[1])
        assert canonicalize(text)[1] in ("MA", "FR")
    a = render_training_plate("599625-WW", np.random.default_rng(1), height=40)
    b = render_training_plate("599625-WW", np.random.default_rng(1), height=40)
    assert a.dtype == np.uint8 and a.shape[0] == 40 and np.array_equal(a, b)


def test_field_degradations_keep_shape_and_dtype() -> None:
    from agent.synth import augment

    rng = np.random.default_rng(3)
    img = render_plate("AB-123-CD", rng, height=40)
    for fn in (
        augment.rotate_warp,
        augment.motion_or_defocus,
        augment.low_light,
        augment.ir_night,
        augment.glare,
        augment.dirt,
        augment.edge_occlusion,
        augment.codec,
        augment.field_degrade,
    ):
        out = fn(img, rng)
        assert out.shape == img.shape, fn.__name__
        assert out.dtype == np.uint8, fn.__name__
    crop = augment.field_crop("12345-B-6", rng, 32, 128)
    assert crop.shape == (32, 128) and crop.dtype == np.uint8


def test_street_scene_boxes_lie_inside_the_frame_and_hold_a_plate() -> None:
    from agent.synth.scenes import paste_plates, street_scene

    rng = np.random.default_rng(8)
    for _ in range(3):
        frame, boxes = street_scene(rng)
        assert frame.shape == (720, 1280, 3) and frame.dtype == np.uint8
        assert 1 <= len(boxes) <= 3
        for x, y, w, h in boxes:
            assert x >= 0 and x + w <= 1280 and y >= 0 and y + h <= 720
            assert 2.5 <= w / h <= 6.5
    base = np.full((300, 400, 3), 100, np.uint8)
    pasted, added = paste_plates(base, rng, n=2)
    assert pasted.shape == base.shape and len(added) >= 1
    assert not np.array_equal(pasted, base)


def test_synthetic_eval_folders_have_manifests_that_raqib_eval_reads(tmp_path: Path) -> None:
    from agent.reader.evaluate import load_manifest
    from agent.synth.evalset import write_eval_sets
    from agent.synth.scenes import labelled_street_scene, street_scene

    folders = write_eval_sets(tmp_path, n=3, seed=5)
    assert [f.name for f in folders] == ["crops-clean", "crops-field", "scenes"]
    for folder in folders:
        manifest = load_manifest(folder)
        assert len(manifest) == 3
        for name, truths in manifest.items():
            assert (folder / name).is_file()
            assert all(canonicalize(t.text)[1] in ("MA", "FR") for t in truths)
            assert all((t.box is None) == (folder.name != "scenes") for t in truths)
    frame_a, boxes_a = street_scene(np.random.default_rng(2))
    frame_b, boxes_b, texts = labelled_street_scene(np.random.default_rng(2))
    assert np.array_equal(frame_a, frame_b) and boxes_a == boxes_b
    assert len(texts) == len(boxes_b)
