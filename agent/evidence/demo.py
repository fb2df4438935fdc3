"""The evidence part of `raqib demo`: upload at the "dock", then audit what HQ holds."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from agent.config import RaqibConfig
from agent.evidence.ledger import Ledger
from agent.evidence.service import evidence_path, ledger_path, open_evidence_dir
from hq.audit import GOOD, audit_files
from hq.evidence_store import HqEvidenceStore
from hq.upload import upload

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EvidenceDemoResult:
    uploaded: int
    verdicts: dict[str, int]

    @property
    def all_verified(self) -> bool:
        return self.uploaded > 0 and set(self.verdicts) <= GOOD

    def summary(self) -> str:
        counts = ", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items())) or "no files"
        return f"demo: {self.uploaded} footage segments uploaded to HQ; auditor: {counts}"


def upload_and_audit(config: RaqibConfig, workdir: Path) -> EvidenceDemoResult:
    """Upload the device's footage and ledger to ``workdir`` (HQ root) and verify every file."""
    ledger = Ledger(ledger_path(config), config.device.id, None)
    evidence = open_evidence_dir(config.evidence, evidence_path(config))
    with HqEvidenceStore.at(workdir) as hq:
        try:
            report = upload(ledger, evidence, hq)
        finally:
            ledger.close()
        files = hq.files(config.device.id)
        verdicts, _ = audit_files(hq, files)
    result = EvidenceDemoResult(
        uploaded=len(report.uploaded) + len(report.already_there),
        verdicts=dict(Counter(v.verdict for v in verdicts)),
    )
    out = sys.stdout
    out.write(result.summary() + "\n")
    out.write(f"demo: check it yourself: raqib verify {hq.dir}/{config.device.id} --hq {workdir}\n")
    out.flush()
    return result
