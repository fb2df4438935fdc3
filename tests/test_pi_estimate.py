"""The Pi timing estimate counts what the shipped models really ask for, and its Pi 4 core
reproduces the published figure it was built from."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from conftest import load_script

from agent.config import DEFAULT_MODELS_DIR


@pytest.fixture(scope="module")
def pi() -> ModuleType:
    return load_script("pi_estimate")


def test_int8_macs_are_counted_per_operator_from_the_model_file(pi: ModuleType) -> None:
    counts = pi.count_ops(DEFAULT_MODELS_DIR / "recogniser.tflite")
    # 32x128 input; 3x3 convolutions 1->24, 24->48, 48->64, 64->64, 64->96, then 2x1, 1x5, 1x1.
    by_hand = (
        32 * 128 * 24 * 9 * 1
        + 16 * 64 * 48 * 9 * 24
        + 8 * 64 * 64 * 9 * 48
        + 8 * 64 * 64 * 9 * 64
        + 4 * 64 * 96 * 9 * 64
        + 64 * 128 * 2 * 96
        + 64 * 128 * 5 * 128
        + 64 * 45 * 128
    )
    assert counts["CONV_2D"].ops == 8
    assert counts["CONV_2D"].macs == by_hand
    detector = pi.count_ops(DEFAULT_MODELS_DIR / "detector.tflite")
    assert detector["DEPTHWISE_CONV_2D"].macs > 0 and detector["CONV_2D"].macs > 10**7


def test_the_pi4_core_reproduces_mobilenet_v1_int8(pi: ModuleType) -> None:
    """MobileNet v1 1.0 224: 551 M MACs in dense convolutions (incl. FC), 17.6 M depthwise."""
    mobilenet = {
        "CONV_2D": pi.OpCount(ops=14, macs=550_500_000),
        "FULLY_CONNECTED": pi.OpCount(ops=1, macs=1_024_000),
        "DEPTHWISE_CONV_2D": pi.OpCount(ops=13, macs=17_600_000),
    }
    core = pi.CoreSpeed(pi.PI4_CONV_GMACS, pi.PI4_DEPTHWISE_GMACS, 0.0)
    assert core.model_ms(mobilenet) == pytest.approx(pi.PI4_REFERENCE_MS, rel=0.03)


def test_calibration_reproduces_the_times_it_was_fitted_to(pi: ModuleType) -> None:
    rec = {"CONV_2D": pi.OpCount(8, 66_000_000, 0)}
    ref = {
        "CONV_2D": pi.OpCount(15, 551_000_000, 0),
        "DEPTHWISE_CONV_2D": pi.OpCount(13, 17_600_000, 0),
    }
    det = {
        "CONV_2D": pi.OpCount(18, 93_000_000, 0),
        "DEPTHWISE_CONV_2D": pi.OpCount(8, 4_900_000, 0),
        "TILE": pi.OpCount(6, 0, 400_000),
    }
    here = pi.calibrate_here((rec, 0.3), (ref, 3.4), (det, 2.5))
    assert here.model_ms(rec) == pytest.approx(0.3)
    assert here.model_ms(ref) == pytest.approx(3.4)
    assert here.model_ms(det) == pytest.approx(2.5)


def test_the_recogniser_ensembles_members_count_as_recogniser_runs(
    pi: ModuleType, tmp_path: Path
) -> None:
    """Video frames are read by the first recogniser, and by the second only where the
    first is in doubt (``reader.recognisers_doubt``); the members share the recogniser's
    architecture: the estimate prices their runs at its cost, so a second member reading
    every plate doubles the recogniser's calls per frame."""
    import shutil

    for name in ("detector", "recogniser"):
        for ext in (".tflite", ".json"):
            shutil.copy(DEFAULT_MODELS_DIR / f"{name}{ext}", tmp_path / f"{name}{ext}")
    alone = pi.time_reader(tmp_path, 40)
    for ext in (".tflite", ".json"):
        shutil.copy(DEFAULT_MODELS_DIR / f"recogniser{ext}", tmp_path / f"recogniser_2{ext}")
    shipped = pi.time_reader(tmp_path, 40)  # the second member reads in doubt only
    pair = pi.time_reader(tmp_path, 40, recognisers=2, doubt=(0.0, 1.0))  # every plate
    assert set(pair.calls_per_frame) == {"detector.tflite", "recogniser.tflite"}
    runs = [t.calls_per_frame["recogniser.tflite"] for t in (alone, shipped, pair)]
    assert 0 < runs[0] < runs[1] < runs[2] == 2 * runs[0]
    assert pair.calls_per_frame["detector.tflite"] == alone.calls_per_frame["detector.tflite"]


def test_a_deployments_reader_section_is_estimated_as_configured(
    pi: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--config``: the Pi 4 settings of the example config (no grey pass, no second look,
    no wider view) ask one detector run a frame and fewer recogniser runs than the defaults;
    the estimate reads on one thread whatever the file says."""
    from agent.config import ReaderConfig, load_config
    from agent.reader.pipeline import ModelPlateReader

    example = load_config(Path(__file__).resolve().parent.parent / "deploy/agent.example.toml")
    assert example.reader.num_threads == 2 and example.reader.zooms == []
    built: list[ReaderConfig] = []
    real_from_config = ModelPlateReader.from_config

    def recording(config: ReaderConfig, *, stills: bool = False) -> ModelPlateReader:
        built.append(config)
        return real_from_config(config, stills=stills)

    monkeypatch.setattr(ModelPlateReader, "from_config", recording)
    shipped = pi.time_reader(DEFAULT_MODELS_DIR, 30)
    pi4 = pi.time_reader(DEFAULT_MODELS_DIR, 30, reader_config=example.reader)
    assert [c.num_threads for c in built] == [1, 1]
    assert not built[1].grey_pass and not built[1].daylight_wide_view
    assert pi4.calls_per_frame["detector.tflite"] == 1.0
    assert shipped.calls_per_frame["detector.tflite"] > 1.0
    runs = [t.calls_per_frame["recogniser.tflite"] for t in (pi4, shipped)]
    assert 0 < runs[0] < runs[1]
