"""The config file: one schema, defaults that run the demo, bad values refused by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import RaqibConfig, load_config, parse_config
from agent.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "raqib.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_gives_defaults_that_run_the_demo() -> None:
    config = load_config(None)
    assert config == RaqibConfig()
    assert config.capture.source == "file"
    assert Path(config.capture.uri).name == "street_clip.mp4"


def test_values_from_file_are_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[device]
id = "car-0042"
state_dir = "/tmp/raqib-state"
[capture]
source = "rtsp"
uri = "rtsp://10.0.0.9/stream"
queue_size = 8
[mqtt]
port = 8883
""",
    )
    config = load_config(path)
    assert config.device.id == "car-0042"
    assert config.device.state_dir == Path("/tmp/raqib-state")
    assert config.capture.queue_size == 8
    assert config.mqtt.port == 8883
    assert config.reader.num_threads == 1  # untouched sections keep defaults


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[capture]\nqueue_size = 0", "capture.queue_size"),
        ("[capture]\nsource = 'webcam'", "capture.source"),
        ("[mqtt]\nport = 70000", "mqtt.port"),
        ("[device]\nid = 'Bad Id!'", "device.id"),
        ("[reader]\nmin_confidence = 1.5", "reader.min_confidence"),
        ("[reader]\nstill_min_confidence = -0.1", "reader.still_min_confidence"),
        ("[reader]\nstill_levelled_plates = 'sometimes'", "reader.still_levelled_plates"),
        ("[reader]\nbare_strokes = 'maybe'", "reader.bare_strokes"),
        ("[watchlist]\nfuzzy_max_changes = 0", "watchlist.fuzzy_max_changes"),
        ("[reader]\nstill_zooms = [4.0, 0.5]", "reader.still_zooms"),
        ("[reader]\nstill_max_side = -1", "reader.still_max_side"),
        ("[reader]\nstill_far_plates = 'yes please'", "reader.still_far_plates"),
        ("[reader]\nrecognisers_doubt = [0.05, 1.5]", "reader.recognisers_doubt"),
        ("[reader]\nrecognisers_doubt = [0.95, 0.05]", "recognisers_doubt"),
        ("[capture]\nqueue_sise = 4", "capture.queue_sise"),
        ("[camera]\nfps = 30", "camera"),
        ("[mqtt]\ntls_cert = '/etc/raqib/device.crt'", "mqtt"),
    ],
)
def test_bad_value_is_refused_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert key in str(err.value)
    assert str(tmp_path / "raqib.toml") in str(err.value)


def test_not_toml_is_refused_with_the_file_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[capture\nsource = file")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.toml")


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "raqib.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_config_is_immutable() -> None:
    config = parse_config({})
    with pytest.raises(ValueError, match="frozen"):
        config.capture.queue_size = 10  # type: ignore[misc]


ROOT = Path(__file__).resolve().parent.parent
BENCH_CONFIGS = ROOT / "scripts" / "bench_configs"


@pytest.mark.parametrize("name", ["agent.example.toml", "hq.example.toml"])
def test_shipped_example_configs_are_valid(name: str) -> None:
    load_config(ROOT / "deploy" / name)


@pytest.mark.parametrize("path", sorted(BENCH_CONFIGS.glob("*.toml")), ids=lambda p: p.stem)
def test_side_by_side_reader_configs_are_valid_and_change_the_photo_reader(path: Path) -> None:
    """scripts/bench_compare.py --config: each file is a reader configuration other than
    the shipped one (docs/benchmarks.md, "lighter photo configurations")."""
    reader = load_config(path).reader
    assert reader != RaqibConfig().reader
