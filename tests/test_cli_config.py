"""The `raqib` command line: ``--config`` before or after the command, and `raqib hq command`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from transport_kit import RawClient

from agent.broker import LocalBroker
from agent.cli import main
from agent.config import MqttConfig
from agent.envelope import decode_command
from agent.pki import HqKeys
from agent.transport.topics import Topics
from hq.db import HqDatabase

DEVICE = "cam-cli-01"


def write_config(tmp_path: Path, port: int = 1883) -> Path:
    path = tmp_path / "raqib.toml"
    path.write_text(
        "\n".join(
            [
                "[device]",
                f'state_dir = "{tmp_path / "state-from-file"}"',
                "[hq]",
                f'database_url = "sqlite:///{tmp_path / "hq.sqlite"}"',
                f'keys_dir = "{tmp_path / "hq-keys"}"',
                "[mqtt]",
                f"port = {port}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def enrolled(tmp_path: Path) -> Iterator[Path]:
    """A config whose HQ database has one enrolled device."""
    with HqDatabase(f"sqlite:///{tmp_path / 'hq.sqlite'}") as db:
        db.enrol_device(DEVICE, HqKeys.generate().signing.public_key(), time.time())
    yield write_config(tmp_path)


@pytest.mark.usefixtures("cli_logging")
@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "{cfg}", "hq", "devices"],
        ["hq", "devices", "--config", "{cfg}"],
        ["hq", "--config", "{cfg}", "devices"],
    ],
)
def test_config_is_read_wherever_the_option_stands(
    enrolled: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([a.format(cfg=enrolled) for a in argv]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["device_id"] for row in rows] == [DEVICE]


@pytest.mark.usefixtures("cli_logging")
@pytest.mark.parametrize("before", [True, False])
def test_device_commands_use_the_state_dir_of_the_given_config(
    tmp_path: Path, before: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(write_config(tmp_path))
    argv = ["--config", cfg, "status"] if before else ["status", "--config", cfg]
    assert main(argv) == 1  # no agent has run there
    assert str(tmp_path / "state-from-file") in capsys.readouterr().err


@pytest.mark.usefixtures("cli_logging")
def test_a_missing_config_file_given_before_the_command_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(tmp_path / "nope.toml"), "hq", "devices"]) == 2
    assert "nope.toml" in capsys.readouterr().err


@pytest.mark.broker
@pytest.mark.usefixtures("cli_logging")
def test_hq_command_signs_publishes_and_records_a_command(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, broker.port)
    keys = HqKeys.load_or_create(tmp_path / "hq-keys")
    device = RawClient(MqttConfig(port=broker.port), "device-watch")
    device.subscribe(Topics("raqib/v1", DEVICE).commands)
    try:
        code = main(
            [
                "--config",
                str(cfg),
                "hq",
                "command",
                DEVICE,
                "disposition",
                "--arg",
                "verdict=confirmed",
                "--arg",
                "hit_seq=4",
                "--by",
                "duty-op",
            ]
        )
        assert code == 0
        deadline = time.monotonic() + 5
        while not device.received and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        device.close()
    row = json.loads(capsys.readouterr().out)
    command = decode_command(device.received[0][1], DEVICE, keys.public().signing)
    assert command.command_id == row["command_id"]
    assert command.args == {"verdict": "confirmed", "hit_seq": 4}
    assert row["issued_by"] == "duty-op"
    assert row["reply_ok"] is None  # nobody answered: no device behind the topic


@pytest.mark.broker
@pytest.mark.usefixtures("cli_logging")
def test_hq_command_waiting_for_a_reply_that_never_comes_fails(
    tmp_path: Path, broker: LocalBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, broker.port)
    HqKeys.load_or_create(tmp_path / "hq-keys")
    argv = ["hq", "command", DEVICE, "send_status", "--wait", "0.5", "--config", str(cfg)]
    assert main(argv) == 1
    assert json.loads(capsys.readouterr().out)["reply_ok"] is None
