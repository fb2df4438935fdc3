"""`raqib upload`, `raqib verify` and `raqib export`: the evidence commands.

``register(subparsers, parents)`` adds them to the main parser; each handler
takes the parsed arguments and the configuration and returns the exit code.
The heavy modules (PyAV, SQLAlchemy) are imported by the handlers, so that
``raqib --help`` and the other commands start fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import RaqibConfig

if TYPE_CHECKING:
    from agent.evidence.footage import Footage
    from hq.evidence_store import HqEvidenceStore

EXIT_OK = 0
EXIT_FAILED = 1

_HQ_HELP = "HQ root directory (default: evidence.hq_dir; with an S3 store, its database only)"

Handler = Callable[[argparse.Namespace, RaqibConfig], int]


def _out(line: str) -> None:
    """Command output on stdout (the commands' result, not a log line)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _hq_store(args: argparse.Namespace, config: RaqibConfig) -> tuple[HqEvidenceStore, str]:
    """HQ's store: footage in ``--hq DIR``/``evidence.hq_dir`` or S3, and the HQ database.

    With ``evidence.store = "s3"`` the footage is in the bucket and ``--hq DIR``
    only names the database (``DIR/hq/hq.sqlite``); without it, ``hq.database_url``.
    """
    from hq.evidence_store import HqEvidenceStore, HqLayout

    if config.evidence.store == "s3":
        from hq.s3_store import S3FootageStore

        url = HqLayout(args.hq).database_url if args.hq is not None else config.hq.database_url
        footage = S3FootageStore.from_config(config.evidence)
        try:
            return HqEvidenceStore(footage, url), f"{footage.location} ({url})"
        except BaseException:
            footage.close()
            raise
    if args.hq is not None:
        return HqEvidenceStore.at(args.hq), str(args.hq)
    root = config.evidence.hq_dir
    return HqEvidenceStore(HqLayout(root).evidence, config.hq.database_url), str(root)


def cmd_upload(args: argparse.Namespace, config: RaqibConfig) -> int:
    """Send ledger and footage to the HQ evidence store; 1 if a segment could not be confirmed."""
    from agent.evidence.ledger import Ledger
    from agent.evidence.service import evidence_path, ledger_path, open_evidence_dir
    from hq.upload import upload

    ledger = Ledger(ledger_path(config), config.device.id, None)
    evidence = open_evidence_dir(config.evidence, evidence_path(config))
    hq, _ = _hq_store(args, config)
    try:
        report = upload(
            ledger, evidence, hq, delete_local=config.evidence.delete_after_upload and not args.keep
        )
    finally:
        hq.close()
        ledger.close()
    _out(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILED


def _expand(args: list[str], hq: HqEvidenceStore) -> list[Path | Footage]:
    """Files, directories (every file below) and ``s3://bucket/key-or-prefix`` of HQ's store."""
    from agent.errors import ConfigError
    from hq.s3_store import S3FootageStore, parse_s3_url

    files: list[Path | Footage] = []
    for arg in args:
        url = parse_s3_url(arg)
        if url is not None:
            if not isinstance(hq.footage, S3FootageStore):
                raise ConfigError(f"{arg}: s3:// footage needs evidence.store = 's3'")
            files += hq.footage.objects(*url)
            continue
        path = Path(arg)
        if path.is_dir():  # an upload still in progress at HQ (.partial) is not footage yet
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix != ".partial")
        else:
            files.append(path)
    return files


def cmd_verify(args: argparse.Namespace, config: RaqibConfig) -> int:
    """One verdict per file; 0 only if every file is verified (or sealed after a power loss)."""
    from hq.audit import GOOD, audit_files
    from hq.report import write_report

    hq, root = _hq_store(args, config)
    try:
        verdicts, auditor = audit_files(hq, _expand(args.footage, hq))
        if args.report is not None:
            write_report(args.report, verdicts, auditor, root)
    finally:
        hq.close()
    for verdict in verdicts:
        if args.json:
            _out(json.dumps(verdict.to_json()))
        else:
            _out(f"{verdict.verdict:>24}  {verdict.file}  ({verdict.reason})")
    if not verdicts:
        sys.stderr.write("raqib verify: no footage files given\n")
        return EXIT_FAILED
    return EXIT_OK if all(v.verdict in GOOD for v in verdicts) else EXIT_FAILED


def cmd_export(args: argparse.Namespace, config: RaqibConfig) -> int:
    """Decrypt a sealed segment with HQ's key into a playable MP4 (HQ side)."""
    from agent.evidence.sealing import open_segment
    from agent.evidence.tracks import media_tracks
    from agent.fsutil import atomic_write
    from agent.pki import HqKeys

    keys = HqKeys.load(args.hq_keys or config.hq.keys_dir)
    opened = open_segment(args.segment.read_bytes(), keys.encryption)
    atomic_write(args.out, opened.plaintext, 0o600)
    state = "complete" if opened.complete else "TRUNCATED (no final chunk)"
    _out(f"{args.out}: {len(opened.plaintext)} bytes of MP4, {opened.chunks} chunks, {state}")
    tracks = media_tracks(opened.plaintext)
    _out("  tracks: " + (", ".join(t.describe() for t in tracks) or "none readable"))
    if tracks and not any(t.kind == "audio" for t in tracks):
        _out("  no sound track (pre-event footage, or recorded without a microphone)")
    return EXIT_OK


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser] | None = None,
) -> None:
    """Add ``upload``, ``verify`` and ``export`` to the main parser's ``subparsers``."""
    parents = parents or []
    p = subparsers.add_parser("upload", help="send footage and ledger to HQ", parents=parents)
    p.add_argument("--hq", type=Path, help=_HQ_HELP)
    p.add_argument("--keep", action="store_true", help="keep local copies after upload")
    p.set_defaults(handler=cmd_upload)

    p = subparsers.add_parser(
        "verify", help="auditor: check footage against HQ's ledger", parents=parents
    )
    p.add_argument(
        "footage", nargs="+", help="segment files, directories or s3://BUCKET/KEY-OR-PREFIX"
    )
    p.add_argument("--hq", type=Path, help=_HQ_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.add_argument("--report", type=Path, help="also write an HTML report here")
    p.set_defaults(handler=cmd_verify)

    p = subparsers.add_parser("export", help="HQ: decrypt a segment to MP4", parents=parents)
    p.add_argument("segment", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--hq-keys", type=Path, help="HQ keys directory (default: hq.keys_dir)")
    p.set_defaults(handler=cmd_export)
