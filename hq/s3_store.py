"""HQ footage in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...).

Objects are ``{prefix}{device}/{segment file}``, the bytes the device sealed.
The guarantees are the directory store's:

* **Confirmation by the stored bytes.** ``stored_hash`` reads the object back
  and hashes it; neither the ETag nor a checksum the store reports is trusted
  (not every S3-compatible server checks them). The device deletes its copy
  only when that hash equals its ledger's.
* **Nothing wrong is committed.** A source whose hash is not the ledger's is
  not sent; a single PUT carries ``ChecksumSHA256`` = the ledger hash, so a
  store that checks it refuses a body damaged on the way; an object that still
  reads back wrong is deleted (after one fresh retry) and its hash returned.
* **Resumable.** A segment already held with the right hash is not sent again
  (``raqib upload`` asks first). A segment larger than the part size goes up
  as a multipart upload with a SHA-256 per part; an interrupted one is taken
  up again: parts already held whose size and MD5 ETag (or SHA-256) match the
  source are kept, the rest are sent. The read-back after completion decides.

Credentials come from a file (``aws_access_key_id = ...`` and
``aws_secret_access_key = ...`` lines; a relative name is a systemd credential
in ``$CREDENTIALS_DIRECTORY``) or, without one, from boto3's usual sources
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` in the environment).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from agent.errors import ConfigError, StorageError
from agent.evidence.errors import LedgerEntryError
from agent.evidence.footage import Footage
from agent.evidence.store import parse_segment_name, sha256_file

if TYPE_CHECKING:
    from agent.config import EvidenceConfig

log = logging.getLogger(__name__)

_BLOCK: Final = 1 << 20
MIN_PART: Final = 5 << 20
"""S3's smallest part (all but the last)."""
_NOT_FOUND: Final = frozenset({"404", "NoSuchKey", "NotFound"})


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


@contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    """botocore's errors as StorageError (the store or the network failed)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise StorageError(
            f"S3 evidence store: cannot {what}: {error.get('Code')} {error.get('Message', '')}"
        ) from exc
    except BotoCoreError as exc:
        raise StorageError(f"S3 evidence store: cannot {what}: {exc}") from exc


def _is_not_found(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and str(exc.response["Error"]["Code"]) in _NOT_FOUND


def read_credentials(path: Path) -> tuple[str, str]:
    """(access key id, secret key) from a credential file; raises ConfigError."""
    if not path.is_absolute() and os.environ.get("CREDENTIALS_DIRECTORY"):
        path = Path(os.environ["CREDENTIALS_DIRECTORY"]) / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"evidence.s3_credentials: cannot read {path}: {exc.strerror}") from exc
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith(("#", ";", "[")):
            values[key.strip().lower()] = value.strip()
    try:
        return values["aws_access_key_id"], values["aws_secret_access_key"]
    except KeyError as exc:
        raise ConfigError(
            f"evidence.s3_credentials: {path} lacks aws_access_key_id or aws_secret_access_key"
        ) from exc


def s3_client(config: EvidenceConfig) -> Any:
    """A boto3 S3 client for ``config`` (endpoint, region, credentials); raises ConfigError."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ConfigError("evidence.store = 's3' needs boto3: pip install 'raqib[s3]'") from exc
    keys: dict[str, str] = {}
    if config.s3_credentials is not None:
        key_id, secret = read_credentials(config.s3_credentials)
        keys = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    settings = Config(
        s3={"addressing_style": "path" if config.s3_endpoint else "auto"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        # only the checksums asked for: some S3-compatible servers refuse the others
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.s3_endpoint or None,
        region_name=config.s3_region,
        config=settings,
        **keys,
    )


@dataclass(frozen=True, slots=True)
class S3Footage:
    """One object in the store, as the auditor reads it."""

    client: Any
    bucket: str
    key: str

    @property
    def label(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    def head(self, size: int) -> bytes:
        from botocore.exceptions import ClientError

        with _s3_errors(f"read {self.label}"):
            try:
                reply = self.client.get_object(
                    Bucket=self.bucket, Key=self.key, Range=f"bytes=0-{size - 1}"
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "InvalidRange":  # an empty object
                    return b""
                raise
            data: bytes = reply["Body"].read()
        return data

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with _s3_errors(f"read {self.label}"):
            body = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"]
            try:
                for block in iter(lambda: body.read(_BLOCK), b""):
                    digest.update(block)
            finally:
                body.close()
        return digest.hexdigest()


class S3FootageStore:
    """HQ footage as objects ``{prefix}{device}/{segment file}`` in one bucket."""

    def __init__(
        self, client: Any, bucket: str, prefix: str = "", *, part_size: int = 16 << 20
    ) -> None:
        if part_size < MIN_PART:
            raise ValueError(f"part size {part_size} is below S3's minimum {MIN_PART}")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.part_size = part_size
        self.sent_bytes = 0
        """Footage bytes sent by this store (kept parts of a resumed upload are not)."""

    @classmethod
    def from_config(cls, config: EvidenceConfig) -> S3FootageStore:
        return cls(
            s3_client(config),
            config.s3_bucket,
            config.s3_prefix,
            part_size=config.s3_part_mb << 20,
        )

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def close(self) -> None:
        self.client.close()

    def key_of(self, device_id: str, name: str) -> str:
        claimed = parse_segment_name(name)
        if claimed is None or claimed[0] != device_id:
            raise LedgerEntryError(f"{name!r} is not a segment file name of {device_id}")
        return f"{self.prefix}{device_id}/{name}"

    # -- confirmation ------------------------------------------------------------------

    def stored_hash(self, device_id: str, name: str) -> str | None:
        key = self.key_of(device_id, name)
        with _s3_errors(f"read {key}"):
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if _is_not_found(exc):
                    return None
                raise
        return S3Footage(self.client, self.bucket, key).sha256()

    # -- receiving ---------------------------------------------------------------------

    def receive_segment(self, device_id: str, name: str, source: Path, expected: str) -> str:
        key = self.key_of(device_id, name)
        try:
            local = sha256_file(source)
            size = source.stat().st_size
        except OSError as exc:
            raise StorageError(f"cannot read {source}: {exc.strerror}") from exc
        if local != expected:
            log.error("upload: %s is not what the ledger recorded; not sent", name)
            return local
        got = ""
        for fresh in (False, True):
            try:
                if size > self.part_size:
                    self._multipart(key, source, size, fresh=fresh)
                else:
                    self._put(key, source, expected)
            except OSError as exc:
                raise StorageError(f"cannot read {source}: {exc.strerror}") from exc
            got = self.stored_hash(device_id, name) or ""
            if got == expected:
                return got
            log.warning("S3 evidence store: %s reads back as %s; sending it again", key, got)
        with _s3_errors(f"delete the wrong copy of {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=key)
        return got

    def _put(self, key: str, source: Path, expected: str) -> None:
        with _s3_errors(f"store {key}"), source.open("rb") as body:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ChecksumSHA256=_b64(bytes.fromhex(expected)),
                ContentType="application/octet-stream",
            )
        self.sent_bytes += source.stat().st_size

    def _multipart(self, key: str, source: Path, size: int, *, fresh: bool) -> None:
        upload_id, held = self._resume(key, fresh=fresh)
        parts = self._send_parts(key, upload_id, source, held)
        with _s3_errors(f"complete {key}"):
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        log.info("S3 evidence store: %s stored in %d parts (%d bytes)", key, len(parts), size)

    def _resume(self, key: str, *, fresh: bool) -> tuple[str, dict[int, dict[str, Any]]]:
        """The upload to continue (and its parts), aborting any others; or a new one."""
        with _s3_errors(f"list the uploads of {key}"):
            listed = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
            uploads = sorted(
                (u for u in listed.get("Uploads", []) if u["Key"] == key),
                key=lambda u: u["Initiated"],
            )
            keep = None if fresh or not uploads else uploads.pop()
            for stale in uploads:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=stale["UploadId"]
                )
            if keep is None:
                made = self.client.create_multipart_upload(
                    Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256"
                )
                return str(made["UploadId"]), {}
            held: dict[int, dict[str, Any]] = {}
            pages = self.client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=key, UploadId=keep["UploadId"]
            )
            for page in pages:
                held.update({part["PartNumber"]: part for part in page.get("Parts", [])})
        log.info("S3 evidence store: resuming %s, %d parts already there", key, len(held))
        return str(keep["UploadId"]), held

    def _send_parts(
        self, key: str, upload_id: str, source: Path, held: dict[int, dict[str, Any]]
    ) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        with source.open("rb") as handle:
            for number, data in enumerate(iter(lambda: handle.read(self.part_size), b""), 1):
                sha = _b64(hashlib.sha256(data).digest())
                etag = _held_etag(held.get(number), data, sha)
                if etag is None:
                    with _s3_errors(f"store part {number} of {key}"):
                        reply = self.client.upload_part(
                            Bucket=self.bucket,
                            Key=key,
                            UploadId=upload_id,
                            PartNumber=number,
                            Body=data,
                            ChecksumSHA256=sha,
                        )
                    etag = str(reply["ETag"])
                    self.sent_bytes += len(data)
                parts.append({"PartNumber": number, "ETag": etag, "ChecksumSHA256": sha})
        return parts

    # -- listing -----------------------------------------------------------------------

    def held(self, device_id: str | None = None) -> list[Footage]:
        prefix = f"{self.prefix}{device_id}/" if device_id else self.prefix
        return self.objects(self.bucket, prefix, exact=False)

    def objects(self, bucket: str, key: str, *, exact: bool = True) -> list[Footage]:
        """The object ``key`` if it exists (and ``exact``), else every object under that prefix."""
        found: list[Footage] = []
        with _s3_errors(f"list s3://{bucket}/{key}"):
            if exact and key and not key.endswith("/"):
                try:
                    self.client.head_object(Bucket=bucket, Key=key)
                    return [S3Footage(self.client, bucket, key)]
                except Exception as exc:
                    if not _is_not_found(exc):
                        raise
                key += "/"
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=key
            ):
                found += [
                    S3Footage(self.client, bucket, item["Key"])
                    for item in page.get("Contents", [])
                    if not item["Key"].endswith("/")
                ]
        return sorted(found, key=lambda item: item.label)


def _held_etag(part: dict[str, Any] | None, data: bytes, sha: str) -> str | None:
    """The ETag of a part already held that has exactly ``data``, else None."""
    if part is None or part.get("Size") != len(data):
        return None
    etag = str(part.get("ETag", ""))
    if part.get("ChecksumSHA256") == sha:
        return etag
    if etag.strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest():
        return etag
    return None


def parse_s3_url(url: str) -> tuple[str, str] | None:
    """(bucket, key or prefix) of ``s3://bucket/key``; None if ``url`` is not one."""
    if not url.startswith("s3://"):
        return None
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return (bucket, key) if bucket else None
