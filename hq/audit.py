"""The auditor's check: is this footage file exactly what device X recorded at time T?

For each file, against the ledger HQ holds and HQ's device registry, one verdict:

``verified``                the file's SHA-256 is in a correctly signed, unbroken chain
``truncated_at_power_loss`` as verified, and the device sealed it after a power cut
``modified``                the ledger has this segment, with another hash
``missing_from_ledger``     a segment file of a known device that no entry names
``unknown``                 not a segment file, or a device HQ does not know
``gap_before``              verified, but the footage or ledger just before it is missing
``out_of_order``            the file's name places it elsewhere in the chain than its hash
``bad_signature``           the entry does not verify against the enrolled device key

Order of precedence: a bad signature first (nothing else can be trusted), then
the hash, then the place in the chain. Everything here works on bytes, entries
and keys given to it (``audit_files`` reads the files and HQ's store); a file
may be a local path or an object in HQ's S3 store, read (and hashed) in full.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.errors import StorageError
from agent.evidence.entry import FLAG_TRUNCATED, GENESIS, LedgerEntry, parse_entry
from agent.evidence.errors import LedgerEntryError, SegmentFormatError
from agent.evidence.footage import Footage, LocalFootage
from agent.evidence.sealing import parse_header
from agent.evidence.store import parse_segment_name
from hq.evidence_store import HqEvidenceStore

VERIFIED: Final = "verified"
MODIFIED: Final = "modified"
UNKNOWN: Final = "unknown"
MISSING: Final = "missing_from_ledger"
GAP_BEFORE: Final = "gap_before"
OUT_OF_ORDER: Final = "out_of_order"
BAD_SIGNATURE: Final = "bad_signature"
TRUNCATED: Final = "truncated_at_power_loss"
GOOD: Final = frozenset({VERIFIED, TRUNCATED})


@dataclass(slots=True)
class Verdict:
    """One line of the auditor's output."""

    file: str
    verdict: str
    reason: str
    sha256: str
    device: str | None = None
    segment: int | None = None
    ledger_seq: int | None = None
    officer: str | None = None
    start: float | None = None
    end: float | None = None
    recording: str | None = None
    flags: list[str] = field(default_factory=list)
    gnss: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Chain:
    """One device's ledger as HQ holds it, checked once."""

    device: str
    key: Ed25519PublicKey | None
    entries: dict[int, LedgerEntry] = field(default_factory=dict)
    signature_ok: dict[int, bool] = field(default_factory=dict)
    by_hash: dict[str, LedgerEntry] = field(default_factory=dict)
    by_segment: dict[int, LedgerEntry] = field(default_factory=dict)
    malformed: int = 0
    _first_break: tuple[int, str] | None = None

    @classmethod
    def build(
        cls, device: str, key: Ed25519PublicKey | None, bodies: Iterable[dict[str, Any]]
    ) -> Chain:
        chain = cls(device, key)
        for body in bodies:
            try:
                entry = parse_entry(body)
            except LedgerEntryError:
                chain.malformed += 1
                continue
            if entry.device != device or entry.seq in chain.entries:
                continue
            chain.entries[entry.seq] = entry
            chain.signature_ok[entry.seq] = key is not None and entry.verify(key)
            if entry.segment is not None:
                chain.by_hash.setdefault(entry.segment.sha256, entry)
                chain.by_segment.setdefault(entry.segment.number, entry)
        return chain

    def link_broken_before(self, seq: int) -> str | None:
        """Why the chain from its first entry up to ``seq`` is not whole, or None if it is."""
        if self._first_break is None:
            self._first_break = self._find_break()
        at, reason = self._first_break
        return reason if at <= seq else None

    def _find_break(self) -> tuple[int, str]:
        for n in range(1, max(self.entries, default=0) + 1):
            entry = self.entries.get(n)
            if entry is None:
                return n, f"ledger entry {n} of {self.device} is not held at HQ"
            if entry.prev != (self.entries[n - 1].hash if n > 1 else GENESIS):
                return n, f"ledger entry {n} does not name the hash of entry {n - 1}"
        return 2**63, ""

    def bad_signature_up_to(self, seq: int) -> int | None:
        """The first entry up to ``seq`` whose signature does not verify, if any."""
        bad = [n for n, ok in self.signature_ok.items() if not ok and n <= seq]
        return min(bad) if bad else None


_HEAD: Final = 8192


def _claim(name: str, data_head: bytes) -> tuple[str, int] | None:
    """(device, segment) the file says it is: its header, else its name."""
    try:
        header, _ = parse_header(data_head)
    except SegmentFormatError:
        return parse_segment_name(name)
    return header.device, header.segment


def _footage(item: Path | Footage) -> Footage:
    return LocalFootage(item) if isinstance(item, Path) else item


class Auditor:
    """Verdicts for footage files against one HQ store."""

    def __init__(self, hq: HqEvidenceStore) -> None:
        self._hq = hq
        self._keys = hq.device_keys()
        self._chains: dict[str, Chain] = {}
        self._present: dict[str, set[int]] = {}

    def chain(self, device: str) -> Chain:
        if device not in self._chains:
            key = self._keys.get(device)
            self._chains[device] = Chain.build(device, key, self._hq.ledger_bodies(device))
        return self._chains[device]

    def note_present(self, files: Iterable[Path | Footage]) -> None:
        """Segments the auditor was given or HQ holds: a segment without any file is missing.

        A file that is there but altered counts as present: its own verdict says so.
        """
        for item in map(_footage, files):
            try:
                claim = _claim(item.name, item.head(_HEAD))
            except (OSError, StorageError):
                continue
            if claim is not None:
                self._present.setdefault(claim[0], set()).add(claim[1])

    def verdict(self, file: Path | Footage) -> Verdict:
        item = _footage(file)
        label = item.label
        try:
            sha = item.sha256()
            head = item.head(_HEAD)
        except OSError as exc:
            return Verdict(label, UNKNOWN, f"cannot read: {exc.strerror}", "")
        except StorageError as exc:
            return Verdict(label, UNKNOWN, f"cannot read: {exc}", "")
        claim = _claim(item.name, head)
        if claim is None:
            return Verdict(label, UNKNOWN, "not a Raqib segment file", sha)
        device, number = claim
        if device not in self._keys:
            return Verdict(label, UNKNOWN, f"device {device!r} is not enrolled at HQ", sha)
        chain = self.chain(device)
        entry = chain.by_hash.get(sha)
        if entry is None:
            return self._not_in_ledger(label, sha, chain, number)
        return self._judge(item, sha, chain, entry)

    def _not_in_ledger(self, label: str, sha: str, chain: Chain, number: int) -> Verdict:
        named = chain.by_segment.get(number)
        if named is None:
            return Verdict(
                label,
                MISSING,
                f"no ledger entry of {chain.device} has this hash",
                sha,
                device=chain.device,
                segment=number,
            )
        verdict = _describe(Verdict(label, MODIFIED, "", sha), named)
        if not chain.signature_ok[named.seq]:
            verdict.verdict, verdict.reason = BAD_SIGNATURE, _bad_sig(chain, named.seq)
        else:
            recorded = named.segment.sha256 if named.segment else "?"
            verdict.reason = f"segment {number} was recorded with hash {recorded}"
        return verdict

    def _judge(self, item: Footage, sha: str, chain: Chain, entry: LedgerEntry) -> Verdict:
        segment = entry.segment
        assert segment is not None
        verdict = _describe(
            Verdict(item.label, VERIFIED, "hash, signature and chain verify", sha), entry
        )
        bad = chain.bad_signature_up_to(entry.seq)
        if bad is not None:
            verdict.verdict, verdict.reason = BAD_SIGNATURE, _bad_sig(chain, bad)
            return verdict
        named = parse_segment_name(item.name)
        if named is not None and named[1] != segment.number:
            verdict.verdict = OUT_OF_ORDER
            verdict.reason = (
                f"file is named as segment {named[1]} but its hash is segment {segment.number}'s"
            )
            return verdict
        broken = chain.link_broken_before(entry.seq) or self._footage_gap(chain, segment.number)
        if broken is not None:
            verdict.verdict, verdict.reason = GAP_BEFORE, broken
        elif FLAG_TRUNCATED in segment.flags:
            verdict.verdict = TRUNCATED
            verdict.reason = "verified; the device sealed it after a power loss cut it short"
        return verdict

    def _footage_gap(self, chain: Chain, number: int) -> str | None:
        previous = chain.by_segment.get(number - 1)
        if previous is None or previous.segment is None:
            return None
        if number - 1 in self._present.get(chain.device, set()):
            return None
        return f"no file of segment {number - 1} (the one before) is given or held at HQ"


def _bad_sig(chain: Chain, seq: int) -> str:
    return f"ledger entry {seq} of {chain.device} does not verify against its enrolled key"


def _describe(verdict: Verdict, entry: LedgerEntry) -> Verdict:
    segment = entry.segment
    verdict.device = entry.device
    verdict.ledger_seq = entry.seq
    verdict.officer = entry.officer
    if segment is not None:
        verdict.segment = segment.number
        verdict.start, verdict.end = segment.start, segment.end
        verdict.recording = segment.recording
        verdict.flags = list(segment.flags)
        verdict.gnss = segment.gnss
    return verdict


def audit_files(
    hq: HqEvidenceStore, files: Sequence[Path | Footage]
) -> tuple[list[Verdict], Auditor]:
    """Verdicts for ``files`` in the order given, and the auditor (for the report).

    ``files`` are paths or footage held elsewhere (objects in HQ's S3 store).
    """
    auditor = Auditor(hq)
    auditor.note_present([*files, *hq.held()])
    return [auditor.verdict(item) for item in files], auditor


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
