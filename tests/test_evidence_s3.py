"""Evidence upload to, and audit in, an S3-compatible HQ store: a real local S3 server.

The server is moto's (``ThreadedMotoServer`` on a free 127.0.0.1 port), spoken
to over HTTP by the real boto3 client; nothing is patched. Footage is recorded
by the real recorder (``EvidenceRig``), as in ``test_evidence.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from agent.broker import free_port
from agent.cli import main
from agent.config import EvidenceConfig, parse_config
from agent.errors import ConfigError
from agent.evidence.ledger import STATE_DELETED, STATE_LOCAL, STATE_UPLOADED, Ledger
from agent.evidence.rig import EvidenceRig
from agent.evidence.service import LEDGER_FILE
from hq.audit import audit_files
from hq.evidence_store import HqEvidenceStore, HqLayout
from hq.s3_store import MIN_PART, S3FootageStore, read_credentials, s3_client
from hq.upload import UploadReport, upload

pytestmark = pytest.mark.evidence

KEY_ID, SECRET = "raqib-test-key", "raqib-test-secret"
PREFIX = "hq/footage/"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3 server (moto) on loopback for this module's tests."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials from the environment only; no ~/.aws files, no instance metadata."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A new, empty bucket per test."""
    name = f"evidence-{uuid.uuid4().hex[:12]}"
    raw_client(s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def cfg(s3_endpoint: str, bucket: str) -> EvidenceConfig:
    return EvidenceConfig(store="s3", s3_endpoint=s3_endpoint, s3_bucket=bucket, s3_prefix=PREFIX)


def raw_client(endpoint: str) -> Any:
    """The test's own view of the bucket (to look, and to tamper as an intruder would)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(s3={"addressing_style": "path"}),
    )


def s3_hq(rig: EvidenceRig, cfg: EvidenceConfig) -> HqEvidenceStore:
    return HqEvidenceStore(S3FootageStore.from_config(cfg), HqLayout(rig.hq_root).database_url)


def s3_upload(rig: EvidenceRig, cfg: EvidenceConfig, **kwargs: Any) -> UploadReport:
    with s3_hq(rig, cfg) as hq:
        return upload(rig.ledger, rig.dir, hq, **kwargs)


def stored(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = raw_client(endpoint)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- upload -----------------------------------------------------------------------------


def test_upload_to_s3_confirms_each_hash_then_deletes_local_copies(
    rig: EvidenceRig, cfg: EvidenceConfig, s3_endpoint: str, bucket: str
) -> None:
    rig.feed(1.0)
    rig.record(3.0)
    recorded = {s.file: s.sha256 for s in rig.ledger.segments()}
    assert len(recorded) == 4

    report = s3_upload(rig, cfg)

    assert report.ok and sorted(report.uploaded) == sorted(recorded)
    assert report.deleted_local == 4 and list(rig.dir.root.iterdir()) == []
    assert {s.state for s in rig.ledger.segments()} == {STATE_DELETED}
    held = stored(s3_endpoint, bucket)
    assert {k: sha(v) for k, v in held.items()} == {
        f"{PREFIX}{rig.device_id}/{name}": digest for name, digest in recorded.items()
    }
    again = s3_upload(rig, cfg)  # nothing left to send: idempotent
    assert again.ok and again.uploaded == [] and again.entries_new == 0


def test_interrupted_upload_resumes_without_resending_what_hq_holds(
    rig: EvidenceRig, cfg: EvidenceConfig
) -> None:
    rig.record(2.0)
    count = len(rig.ledger.segments())
    first = s3_upload(rig, cfg, delete_local=False)  # copies kept, as after a crash
    assert first.ok and len(first.uploaded) == count >= 2
    for segment in rig.ledger.segments():  # the device never learnt HQ confirmed them
        rig.ledger.set_state(segment.number, STATE_LOCAL)

    with s3_hq(rig, cfg) as hq:
        report = upload(rig.ledger, rig.dir, hq)
        assert isinstance(hq.footage, S3FootageStore)
        assert hq.footage.sent_bytes == 0  # each object read back, found right, not sent
    assert len(report.already_there) == count and report.uploaded == []
    assert report.deleted_local == count


def test_object_altered_at_hq_keeps_the_local_copy_until_resent(
    rig: EvidenceRig, cfg: EvidenceConfig, s3_endpoint: str, bucket: str
) -> None:
    rig.record(1.0)
    first = s3_upload(rig, cfg, delete_local=False)
    assert first.ok and {s.state for s in rig.ledger.segments()} == {STATE_UPLOADED}
    client = raw_client(s3_endpoint)
    key, data = next(iter(stored(s3_endpoint, bucket).items()))
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(damaged))

    # the re-check just before deleting reads the object back: wrong, so the copy stays
    kept = s3_upload(rig, cfg)
    name = key.rsplit("/", 1)[-1]
    assert (rig.dir.root / name).exists()
    assert {s.file: s.state for s in rig.ledger.segments()}[name] == STATE_LOCAL
    assert kept.deleted_local == len(first.uploaded) - 1

    repaired = s3_upload(rig, cfg)  # the next upload sends it again and confirms it
    assert repaired.ok and repaired.uploaded == [name] and repaired.deleted_local == 1
    assert stored(s3_endpoint, bucket)[key] == data


def test_source_that_differs_from_its_ledger_hash_is_never_stored(
    tmp_path: Path, cfg: EvidenceConfig, s3_endpoint: str, bucket: str
) -> None:
    source = tmp_path / "cam-x-01_00000001_20261125T000000Z.rqseg"
    source.write_bytes(b"edited footage")
    store = S3FootageStore.from_config(cfg)
    try:
        got = store.receive_segment("cam-x-01", source.name, source, sha(b"recorded footage"))
    finally:
        store.close()
    assert got == sha(b"edited footage")
    assert stored(s3_endpoint, bucket) == {}


def test_large_segment_resumes_a_multipart_upload_by_part(
    tmp_path: Path, cfg: EvidenceConfig, s3_endpoint: str, bucket: str
) -> None:
    """An upload cut after part 1 (good) and part 2 (damaged) keeps 1, sends 2 and 3."""
    data = os.urandom(2 * MIN_PART + 12345)
    name = "cam-x-01_00000007_20261125T000000Z.rqseg"
    source = tmp_path / name
    source.write_bytes(data)
    key = f"{PREFIX}cam-x-01/{name}"
    client = raw_client(s3_endpoint)
    started = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")
    upload_id = started["UploadId"]
    client.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=data[:MIN_PART]
    )
    client.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"\0" * MIN_PART
    )

    store = S3FootageStore(s3_client(cfg), bucket, PREFIX, part_size=MIN_PART)
    try:
        got = store.receive_segment("cam-x-01", name, source, sha(data))
        assert got == sha(data) == store.stored_hash("cam-x-01", name)
        assert store.sent_bytes == len(data) - MIN_PART  # part 1 was not sent again
    finally:
        store.close()
    assert stored(s3_endpoint, bucket) == {key: data}
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# -- the auditor and the commands ---------------------------------------------------------


def _write_config(rig: EvidenceRig, cfg: EvidenceConfig, creds: Path | str) -> Path:
    path = rig.root / "raqib.toml"
    path.write_text(
        f"""
[device]
id = "{rig.device_id}"
state_dir = "{rig.device_dir}"

[evidence]
path = "{rig.dir.root}"
store = "s3"
s3_endpoint = "{cfg.s3_endpoint}"
s3_bucket = "{cfg.s3_bucket}"
s3_prefix = "{cfg.s3_prefix}"
s3_credentials = "{creds}"

[hq]
database_url = "{HqLayout(rig.hq_root).database_url}"
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.usefixtures("cli_logging")
def test_upload_and_verify_commands_with_an_s3_store(
    rig: EvidenceRig,
    cfg: EvidenceConfig,
    s3_endpoint: str,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rig.feed(1.0)
    rig.record(3.0)
    rig.ledger.close()  # `raqib upload` opens the device's ledger where the daemon keeps it
    (rig.device_dir / "ledger.sqlite").rename(rig.device_dir / LEDGER_FILE)
    rig.ledger = Ledger(rig.device_dir / LEDGER_FILE, rig.device_id, rig.signing_key)
    # credentials as a systemd credential, not in the environment or the TOML
    creds_dir = rig.root / "credentials"
    creds_dir.mkdir()
    (creds_dir / "s3").write_text(
        f"aws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n", encoding="utf-8"
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds_dir))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    config = str(_write_config(rig, cfg, "s3"))

    assert main(["upload", "--config", config]) == 0
    assert "4 segments uploaded" in capsys.readouterr().out
    assert list(rig.dir.root.iterdir()) == []

    where = f"s3://{bucket}/{PREFIX}{rig.device_id}/"
    argv = ["verify", where, "--config", config, "--hq", str(rig.hq_root), "--json"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["verdict"] for line in lines] == ["verified"] * 4
    assert all(line["file"].startswith(where) for line in lines)

    client = raw_client(s3_endpoint)  # an intruder edits one object and deletes another
    keys = [line["file"].removeprefix(f"s3://{bucket}/") for line in lines]
    data = bytearray(client.get_object(Bucket=bucket, Key=keys[1])["Body"].read())
    data[-5] ^= 0x40
    client.put_object(Bucket=bucket, Key=keys[1], Body=bytes(data))
    client.delete_object(Bucket=bucket, Key=keys[2])
    assert main(argv) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["verdict"] for line in lines] == ["verified", "modified", "gap_before"]

    one = f"s3://{bucket}/{keys[0]}"  # a single object, with the local-file path alongside
    assert main(["verify", one, "--config", config, "--hq", str(rig.hq_root)]) == 0


def test_auditor_reads_objects_and_files_alike(
    rig: EvidenceRig, cfg: EvidenceConfig, tmp_path: Path
) -> None:
    rig.record(1.0)
    local = sorted(rig.dir.root.iterdir())
    report = s3_upload(rig, cfg, delete_local=False)
    assert report.ok
    with s3_hq(rig, cfg) as hq:
        held = hq.held(rig.device_id)
        results, _ = audit_files(hq, [*held, *local])
    assert [v.verdict for v in results] == ["verified"] * (2 * len(local))
    assert [v.sha256 for v in results[: len(local)]] == [v.sha256 for v in results[len(local) :]]


# -- configuration ------------------------------------------------------------------------


def test_config_defaults_keep_the_directory_store_and_s3_needs_a_bucket() -> None:
    assert parse_config({}).evidence.store == "dir"
    with pytest.raises(ConfigError, match="s3_bucket"):
        parse_config({"evidence": {"store": "s3"}})
    with pytest.raises(ConfigError, match="s3_bucket"):
        parse_config({"evidence": {"store": "s3", "s3_bucket": "Bad_Name"}})
    with pytest.raises(ConfigError, match="s3_secret"):
        parse_config({"evidence": {"s3_secret": "never here"}})


def test_credential_file_is_read_from_the_systemd_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "s3").write_text(
        "# HQ evidence bucket\naws_access_key_id = AKID\naws_secret_access_key=se=cret\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert read_credentials(Path("s3")) == ("AKID", "se=cret")
    assert read_credentials(tmp_path / "s3") == ("AKID", "se=cret")
    (tmp_path / "bad").write_text("aws_access_key_id = AKID\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="aws_secret_access_key"):
        read_credentials(Path("bad"))
    with pytest.raises(ConfigError, match="cannot read"):
        read_credentials(Path("absent"))
