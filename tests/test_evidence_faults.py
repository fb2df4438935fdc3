"""Evidence under faults and end to end: SIGKILL mid-segment, the button, the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from agent.cli import main
from agent.config import RaqibConfig, parse_config
from agent.evidence.recorder import BY_OFFICER
from agent.evidence.rig import EvidenceRig, frames
from agent.evidence.sealing import open_segment
from agent.evidence.service import EvidenceService
from agent.evidence.store import sha256_file
from agent.pki import HqKeys, load_or_create_device_key
from firmware_glue.button import SimulatedButton
from hq.audit import audit_files
from hq.db import device_messages

pytestmark = pytest.mark.evidence

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agent.evidence.rig import EvidenceRig
    rig = EvidenceRig(Path(sys.argv[1]), enrol=False)
    rig.recorder.request_start("officer")
    rig.feed(2.0)  # segments 1 and 2 sealed at the next keyframe
    told = False
    while True:  # keep recording; say so once segment 3 has whole chunks on disk
        rig.feed(0.04)
        partial = list(rig.dir.root.glob("*.partial"))
        if not told and partial and partial[0].stat().st_size > 3 * 4112:
            print("recording", flush=True)
            told = True
        time.sleep(0.01)
    """
)


@pytest.mark.faults
def test_last_segment_cut_by_sigkill_is_sealed_and_marked_truncated(tmp_path: Path) -> None:
    EvidenceRig(tmp_path).close()  # keys made and the device enrolled at HQ
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "recording"
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    rig = EvidenceRig(tmp_path)  # the device starts again
    left = list(rig.dir.root.glob("*.partial"))
    assert len(left) == 1
    assert rig.recorder.recover() == 1
    assert not list(rig.dir.root.glob("*.partial"))
    assert rig.upload().ok
    files = rig.hq_files()
    with rig.hq() as hq:
        results, _ = audit_files(hq, files)
    verdicts = [v.verdict for v in results]
    assert len(verdicts) == 3
    assert verdicts == ["verified"] * (len(verdicts) - 1) + ["truncated_at_power_loss"]
    opened = open_segment(files[-1].read_bytes(), rig.hq_key)
    assert not opened.complete and opened.chunks >= 2  # what was written before the cut
    rig.close()


def _service_config(tmp_path: Path) -> RaqibConfig:
    return parse_config(
        {
            "device": {"id": "cam-button-01", "state_dir": str(tmp_path / "device")},
            "capture": {"fps": 25.0},
            "evidence": {
                "segment_s": 1.0,
                "pre_event_s": 1.0,
                "gop_s": 0.5,
                "min_free_mb": 0,
                "officer": "B-1234",
            },
        }
    )


def test_officer_button_starts_and_stops_recording_on_the_recorder_thread(
    tmp_path: Path,
) -> None:
    config = _service_config(tmp_path)
    service = EvidenceService(
        config,
        signing_key=load_or_create_device_key(tmp_path / "device.key"),
        hq_key=HqKeys.load_or_create(tmp_path / "hq-keys").encryption.public_key(),
    )
    button = service.button
    assert isinstance(button, SimulatedButton)
    service.start()
    stream = frames(3.0)
    for i, frame in enumerate(stream):
        if i in (25, 60):
            deadline = time.monotonic() + 5
            while service.frames.stats().depth and time.monotonic() < deadline:
                time.sleep(0.01)  # let the recorder reach this point of the stream
            button.press()
        deadline = time.monotonic() + 5
        while service.frames.stats().depth >= 6 and time.monotonic() < deadline:
            time.sleep(0.005)  # no frame dropped: this test counts them
        service.frames.put(frame)
    service.stop(timeout=20)
    ledger = service.ledger
    assert len(button.presses) == 2
    entries = json.loads(json.dumps(ledger_entries(tmp_path)))
    actions = [(e["action"]["name"], e["action"]["by"]) for e in entries if e["type"] == "action"]
    assert actions[:3] == [
        ("config_changed", "device"),
        ("record_start", BY_OFFICER),
        ("record_stop", BY_OFFICER),
    ]
    segments = [e["segment"] for e in entries if e["type"] == "segment"]
    assert segments and all(e["officer"] == "B-1234" for e in entries)
    assert ledger is service.ledger


def ledger_entries(tmp_path: Path) -> list[dict[str, object]]:
    from agent.evidence.ledger import Ledger

    with Ledger(tmp_path / "device" / "evidence-ledger.sqlite", "cam-button-01", None) as ledger:
        return ledger.entries()


@pytest.mark.slow
@pytest.mark.usefixtures("cli_logging")
def test_demo_records_uploads_and_the_auditor_sees_green_then_red(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.demo import run_demo

    workdir = tmp_path / "demo"
    result = run_demo(RaqibConfig(), workdir)
    assert result.lost == 0
    out = capsys.readouterr().out
    assert "auditor:" in out and "verified" in out
    footage = sorted((workdir / "evidence").rglob("*.rqseg"))
    assert footage
    engine = create_engine(f"sqlite:///{workdir / 'hq' / 'hq.sqlite'}")
    with engine.connect() as conn:  # what came over MQTT as it was made, before the upload
        bodies = conn.execute(
            select(device_messages.c.body).where(device_messages.c.kind == "ledger")
        ).all()
    engine.dispose()
    over_mqtt = {json.loads(b.body).get("segment", {}).get("sha256") for b in bodies}
    assert {sha256_file(path) for path in footage} <= over_mqtt
    argv = ["verify", *map(str, footage), "--hq", str(workdir), "--json"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["verdict"] for line in lines} == {"verified"}
    assert len(lines) == len(footage)

    data = bytearray(footage[0].read_bytes())
    data[-100] ^= 0x80
    footage[0].write_bytes(bytes(data))
    assert main(argv) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["verdict"] == "modified"
