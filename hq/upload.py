"""`raqib upload`: at the dock, hand footage and ledger to the HQ evidence store.

Order matters for the chain of custody: first every ledger entry (HQ usually
has them already over MQTT; storing is idempotent), then each local segment,
oldest first. A segment is marked ``uploaded`` only when the hash HQ reports for
the stored file equals the hash in the device's ledger, and only then may the
local copy be deleted. An interrupted upload resumes where it stopped (HQ keeps
the ``.partial``, or the S3 store the parts of a multipart upload), and a
segment whose stored hash is wrong is reported and kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from agent.evidence.ledger import STATE_DELETED, STATE_LOCAL, STATE_UPLOADED, Ledger
from agent.evidence.store import EvidenceDir
from hq.evidence_store import HqEvidenceStore, store_ledger_entry

log = logging.getLogger(__name__)


@dataclass(slots=True)
class UploadReport:
    entries_sent: int = 0
    entries_new: int = 0
    uploaded: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deleted_local: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        return (
            f"upload: {self.entries_sent} ledger entries ({self.entries_new} new at HQ), "
            f"{len(self.uploaded)} segments uploaded, {len(self.already_there)} already at HQ, "
            f"{len(self.failed)} failed, {self.deleted_local} local copies deleted"
        )


def upload(
    ledger: Ledger,
    evidence: EvidenceDir,
    hq: HqEvidenceStore,
    *,
    delete_local: bool = True,
) -> UploadReport:
    """Send the ledger and every not yet uploaded segment; see the module docstring.

    Raises StorageError if HQ's store or database cannot be written (nothing is
    deleted locally in that case).
    """
    report = UploadReport()
    for body in ledger.entries():
        report.entries_sent += 1
        report.entries_new += store_ledger_entry(hq.engine, ledger.device_id, 0, body)
    for segment in ledger.segments(STATE_LOCAL):
        source = evidence.root / segment.file
        if not source.exists():
            log.error("upload: %s is in the ledger but not on disk", segment.file)
            report.failed.append(segment.file)
            continue
        stored = hq.stored_hash(ledger.device_id, segment.file)
        if stored == segment.sha256:
            report.already_there.append(segment.file)
        else:
            stored = hq.receive_segment(ledger.device_id, segment.file, source, segment.sha256)
            if stored != segment.sha256:
                log.error("upload: HQ holds %s with another hash; local copy kept", segment.file)
                report.failed.append(segment.file)
                continue
            report.uploaded.append(segment.file)
        ledger.set_state(segment.number, STATE_UPLOADED)
    if delete_local:
        report.deleted_local = _delete_uploaded(ledger, evidence, hq)
    return report


def _delete_uploaded(ledger: Ledger, evidence: EvidenceDir, hq: HqEvidenceStore) -> int:
    deleted = 0
    for segment in ledger.segments(STATE_UPLOADED):
        # re-checked at HQ just before the local copy goes
        if hq.stored_hash(ledger.device_id, segment.file) != segment.sha256:
            log.error("upload: %s no longer matches at HQ; local copy kept", segment.file)
            ledger.set_state(segment.number, STATE_LOCAL)
            continue
        evidence.forget(segment.file)
        ledger.set_state(segment.number, STATE_DELETED)
        deleted += 1
    return deleted


def open_hq(root: Path) -> HqEvidenceStore:
    return HqEvidenceStore.at(root)
