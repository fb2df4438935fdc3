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
        augment.cast_shadow,
    ):
        out = fn(img, rng)
        assert out.shape == img.shape, fn.__name__
        assert out.dtype == np.uint8, fn.__name__
    crop = augment.field_crop("12345-B-6", rng, 32, 128)
    assert crop.shape == (32, 128) and crop.dtype == np.uint8


def test_a_cast_shadow_darkens_one_side_of_a_line_and_leaves_the_other() -> None:
    """The shadow falls on one side of its edge: part of the plate keeps its light exactly,
    part keeps between 30 % and 70 % of it, and grey and colour images both take one."""
    from agent.synth import augment

    plate = np.full((32, 128), 200, np.uint8)
    for seed in range(20):
        out = augment.cast_shadow(plate, np.random.default_rng(seed))
        assert out.shape == plate.shape and out.dtype == np.uint8
        assert (out == 200).mean() > 0.05  # the lit side
        darkest = int(out.min())
        assert 0.3 * 200 - 1 <= darkest <= 0.7 * 200 + 1  # the shaded side, at its depth
    colour = render_plate("AB-123-CD", np.random.default_rng(1), height=40)
    shaded = augment.cast_shadow(colour, np.random.default_rng(2))
    assert shaded.shape == colour.shape and (shaded <= colour).all()


def test_street_scene_boxes_lie_inside_the_frame_and_hold_a_plate() -> None:
    from agent.synth.scenes import paste_plates, street_scene

    rng = np.random.default_rng(8)
    for _ in range(3):
        frame, boxes = street_scene(rng)
        assert frame.shape == (720, 1280, 3) and frame.dtype == np.uint8
        assert 1 <= len(boxes) <= 3
        for x, y, w, h in boxes:
            assert x >= 0 and x + w <= 1280 and y >= 0 and y + h <= 720
            assert 0.9 <= w / h <= 6.5  # two-line plates are square-ish
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
            assert all(canonicalize(t.text) == (t.text, canonicalize(t.text)[1]) for t in truths)
            assert all(canonicalize(t.text)[1] in ("MA", "FR", "EU") for t in truths)
            assert all((t.box is None) == (folder.name != "scenes") for t in truths)
    frame_a, boxes_a = street_scene(np.random.default_rng(2))
    frame_b, boxes_b, texts = labelled_street_scene(np.random.default_rng(2))
    assert np.array_equal(frame_a, frame_b) and boxes_a == boxes_b
    assert len(texts) == len(boxes_b)


# ------------------------------------------------------------ all plate kinds

ALL_KINDS = [
    ("12345-B-6", False, "ma"),
    ("45498-B-26", True, "ma2"),
    ("12-SH-3", True, "ma2"),
    ("8-013353", True, "moped"),
    ("599625-WW", False, "ww"),
    ("W18-123456", False, "w18"),
    ("123456-M", False, "state"),
    ("CD-123-19", False, "cd"),
    ("CMD-7-05", False, "cd"),
    ("AB-123-CD", False, "fr"),
    ("123-AB-45", False, "fr"),
    ("BAB-1234", False, "eu-DE"),
    ("1234-BCD", False, "eu-ES"),
    ("AI-123-CD", False, "eu-IT"),
    ("1-ABC-123", False, "eu-BE"),
    ("GB-123-D", False, "eu-NL"),
    ("AB-12-CD", False, "eu-PT"),
    ("WA-12345", False, "eu-PL"),
]


@pytest.mark.parametrize(("text", "two_line", "kind"), ALL_KINDS)
def test_every_kind_renders_deterministically_at_its_aspect(
    text: str, two_line: bool, kind: str
) -> None:
    from agent.synth.augment import plate_kind, render_any_plate

    assert plate_kind(text, two_line=two_line) == kind
    a = render_any_plate(text, np.random.default_rng(4), 60, two_line=two_line)
    b = render_any_plate(text, np.random.default_rng(4), 60, two_line=two_line)
    assert np.array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape[0] == 60 and a.shape[2] == 3 and a.flags.c_contiguous
    aspect = a.shape[1] / a.shape[0]
    if kind == "ma2":
        assert 1.3 <= aspect <= 1.7
    elif kind == "moped":
        assert 1.0 <= aspect <= 1.35
    else:
        assert 4.2 <= aspect <= 5.2


@pytest.mark.parametrize(("text", "two_line", "kind"), ALL_KINDS)
def test_crops_of_every_kind_keep_the_runtime_aspect_rule(
    text: str, two_line: bool, kind: str
) -> None:
    from agent.reader.layout import maybe_two_line
    from agent.synth.augment import clean_plate_crop, field_crop, field_plate_crop

    two = kind in ("ma2", "moped")
    for seed in range(6):
        for crop in (
            field_plate_crop(text, np.random.default_rng(seed), two_line=two_line),
            clean_plate_crop(text, np.random.default_rng(seed), two_line=two_line),
        ):
            h, w = crop.shape[:2]
            assert crop.dtype == np.uint8 and crop.shape[2] == 3
            assert maybe_two_line(w, h) == two, (seed, w, h)
            if not two:
                assert w / h > 3
    strip = field_crop(text, np.random.default_rng(1), 32, 128, two_line=two_line)
    assert strip.shape == (32, 128) and strip.dtype == np.uint8
    again = field_crop(text, np.random.default_rng(1), 32, 128, two_line=two_line)
    assert np.array_equal(strip, again)


def test_two_line_field_crop_is_the_layout_composite_of_the_gray_crop() -> None:
    import cv2

    from agent.reader.layout import two_line_composite
    from agent.synth.augment import field_crop, field_plate_crop

    crop = field_plate_crop("45498-B-26", np.random.default_rng(9), two_line=True)
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    strip = field_crop("45498-B-26", np.random.default_rng(9), 32, 128, two_line=True)
    assert np.array_equal(strip, two_line_composite(gray, 32, 128))


def test_random_training_plate_follows_the_mix_and_gives_canonical_texts() -> None:
    from agent.reader.plate_text import two_line_parts
    from agent.synth.augment import plate_kind, random_training_plate

    rng = np.random.default_rng(12)
    counts: dict[str, int] = {}
    n = 6000
    for _ in range(n):
        text, two_line = random_training_plate(rng)
        canonical, fmt = canonicalize(text)
        assert canonical == text and fmt in ("MA", "FR", "EU")
        assert is_valid(text, fmt)
        kind = plate_kind(text, two_line=two_line)
        if two_line:
            assert two_line_parts(text) is not None
        if kind == "fr":
            kind = "fni" if text[0].isdigit() else "siv"
        key = "eu" if kind.startswith("eu") else kind
        counts[key] = counts.get(key, 0) + 1
    expected = {
        "ma": 0.40, "ma2": 0.07, "moped": 0.04, "ww": 0.05, "w18": 0.02, "state": 0.02,
        "cd": 0.02, "siv": 0.22 + 0.10 / 7, "fni": 0.06, "eu": 0.10 * 6 / 7,
    }  # fmt: skip
    for kind, share in expected.items():
        assert abs(counts.get(kind, 0) / n - share) < 0.02, (kind, counts)


def test_random_eu_texts_have_their_country_shape() -> None:
    from agent.reader.plate_text import eu_country
    from agent.synth.augment import EU_COUNTRIES, random_eu_text

    rng = np.random.default_rng(3)
    for country in EU_COUNTRIES:
        for _ in range(30):
            text = random_eu_text(rng, country)
            fmt = canonicalize(text)[1]
            if country == "IT":
                assert fmt in ("FR", "EU")  # Italian plates are SIV-shaped
            else:
                assert fmt == "EU" and eu_country(text.replace("-", "")) == country
    with pytest.raises(ValueError, match="EU plates"):
        random_eu_text(rng, "FR")


def test_render_any_plate_refuses_non_canonical_text() -> None:
    from agent.synth.augment import render_any_plate

    for bad in ("8|013353", "123456M", "HELLO", "1234BCD"):
        with pytest.raises(ValueError, match="canonical"):
            render_any_plate(bad, np.random.default_rng(0), 40)


def test_eval_crops_are_saved_at_their_natural_aspect(tmp_path: Path) -> None:
    import cv2

    from agent.reader.evaluate import load_manifest
    from agent.reader.layout import maybe_two_line
    from agent.synth.augment import plate_kind
    from agent.synth.evalset import write_eval_sets

    folders = write_eval_sets(tmp_path, n=40, seed=11)
    for folder in folders[:2]:
        kinds = set()
        for name, truths in load_manifest(folder).items():
            image = cv2.imread(str(folder / name))
            h, w = image.shape[:2]
            text = truths[0].text
            kinds.add(plate_kind(text))
            if maybe_two_line(w, h):
                assert plate_kind(text) in ("ma", "moped")  # a two-line car or a motorcycle
            else:
                assert w / h > 3 and plate_kind(text) != "moped"
        assert len(kinds) >= 3


def test_every_drawn_training_plate_is_a_canonical_plate_the_renderer_knows() -> None:
    from agent.synth.augment import plate_kind, random_training_plate

    rng = np.random.default_rng(11)
    for _ in range(20000):
        text, two_line = random_training_plate(rng)
        assert plate_kind(text, two_line=two_line)  # raises for a text it cannot draw


def test_drawn_italian_and_fni_texts_never_fall_outside_a_known_format() -> None:
    from agent.synth.augment import _fni_text, random_eu_text

    rng = np.random.default_rng(4)
    for _ in range(5000):  # number 000 (1 in 1000) or a series-letter FNI (SH, ...) once broke it
        assert canonicalize(random_eu_text(rng, "IT"))[1] in ("FR", "EU")
        assert canonicalize(_fni_text(rng))[1] == "FR"
