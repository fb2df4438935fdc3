"""The auditor's pages: each device's footage ledger with a verdict per segment, the chain
checks, the report (HTML and PDF), segment export, and the console's own audit trail.

Verdicts come from ``hq.audit`` run on the footage HQ holds, exactly as
``raqib verify`` does; the console adds one row per ledger entry whose footage
HQ does not hold (``missing``). Opening the ledger, a report or an export is
itself written to the audit trail.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from starlette.responses import HTMLResponse, Response

from agent.config import RaqibConfig
from agent.errors import RaqibError
from agent.evidence.footage import Footage
from hq.audit import (
    BAD_SIGNATURE,
    GAP_BEFORE,
    MISSING,
    MODIFIED,
    OUT_OF_ORDER,
    TRUNCATED,
    UNKNOWN,
    VERIFIED,
    Auditor,
    Verdict,
    audit_files,
)
from hq.console.store import AUDITOR
from hq.console.web import Ctx, page
from hq.evidence_store import HqEvidenceStore, HqLayout
from hq.report import render_report

MAX_EXPORT_BYTES: Final = 1 << 30
SHOWN: Final = {
    VERIFIED: "verified",
    TRUNCATED: "verified",
    MODIFIED: "modified",
    MISSING: "not_in_ledger",
    GAP_BEFORE: "gap",
    OUT_OF_ORDER: "out_of_order",
    BAD_SIGNATURE: "bad_signature",
    UNKNOWN: "unknown",
}
"""Each ``hq.audit`` verdict as the console names it (``missing``: footage not held)."""


@contextmanager
def evidence_store(config: RaqibConfig) -> Iterator[tuple[HqEvidenceStore, str]]:
    """HQ's footage (directory or S3) and database, as ``raqib verify`` opens them."""
    if config.evidence.store == "s3":
        from hq.s3_store import S3FootageStore

        footage = S3FootageStore.from_config(config.evidence)
        store = HqEvidenceStore(footage, config.hq.database_url)
        where = footage.location
    else:
        store = HqEvidenceStore(HqLayout(config.evidence.hq_dir).evidence, config.hq.database_url)
        where = str(config.evidence.hq_dir)
    try:
        yield store, where
    finally:
        store.close()


@dataclass(frozen=True, slots=True)
class Ledger:
    """One device's segments as the auditor sees them, and the chain's checks."""

    rows: list[dict[str, Any]]
    checks: dict[str, Any]
    verdicts: list[Verdict]
    auditor: Auditor
    where: str


def ledger_view(store: HqEvidenceStore, where: str, device: str) -> Ledger:
    files = store.held(device)
    verdicts, auditor = audit_files(store, files)
    chain = auditor.chain(device)
    rows: list[dict[str, Any]] = []
    seen_segments: set[int] = set()
    for v in verdicts:
        if v.segment is not None:
            seen_segments.add(v.segment)
        rows.append(
            {**v.to_json(), "shown": SHOWN.get(v.verdict, v.verdict), "name": _name(v.file)}
        )
    for number, entry in sorted(chain.by_segment.items()):
        if number in seen_segments or entry.segment is None:
            continue
        rows.append(
            {
                "file": "",
                "name": "",
                "verdict": "missing",
                "shown": "missing",
                "reason": f"ledger entry {entry.seq} names segment {number}; HQ holds no file",
                "segment": number,
                "ledger_seq": entry.seq,
                "officer": entry.officer,
                "start": entry.segment.start,
                "end": entry.segment.end,
                "sha256": entry.segment.sha256,
            }
        )
    rows.sort(key=lambda r: (r.get("segment") is None, r.get("segment") or 0))
    last = max(chain.entries, default=0)
    broken = chain.link_broken_before(last) if last else None
    bad = [n for n, ok in chain.signature_ok.items() if not ok]
    checks = {
        "entries": len(chain.entries),
        "last_seq": last,
        "chain_whole": broken is None,
        "chain_break": broken or "",
        "bad_signatures": len(bad),
        "malformed": chain.malformed,
        "key_enrolled": chain.key is not None,
    }
    return Ledger(rows, checks, verdicts, auditor, where)


def _name(label: str) -> str:
    return label.rstrip("/").rsplit("/", 1)[-1]


def _device(ctx: Ctx) -> str:
    return str(ctx.request.path_params["device_id"])


@page(AUDITOR)
def audit_home(ctx: Ctx) -> Response:
    devices = ctx.console.db.list_devices()
    officers = ctx.request.app.state.queries.officers()
    for device in devices:
        device["officer"] = officers.get(device["device_id"], "")
    ctx.audit("view_evidence_index", "devices")
    return ctx.render("audit.html", devices=devices)


@page(AUDITOR)
def ledger_page(ctx: Ctx) -> Response:
    device = _device(ctx)
    officer = ctx.request.query_params.get("officer", "").strip()[:64]
    with evidence_store(ctx.console.config) as (store, where):
        view = ledger_view(store, where, device)
    rows = [r for r in view.rows if not officer or r.get("officer") == officer]
    officers = sorted({r["officer"] for r in view.rows if r.get("officer")})
    ctx.audit("view_ledger", device, detail=f"officer={officer}" if officer else "")
    return ctx.render(
        "ledger.html",
        device=device,
        rows=rows,
        checks=view.checks,
        officer=officer,
        officers=officers,
    )


_STYLE_RE: Final = re.compile(r"<style>(.*?)</style>", re.DOTALL)


@page(AUDITOR)
def report_html(ctx: Ctx) -> Response:
    """``hq.report``'s page as is; its one style block is allowed by hash, nothing else inline."""
    device = _device(ctx)
    with evidence_store(ctx.console.config) as (store, where):
        view = ledger_view(store, where, device)
        body = render_report(view.verdicts, view.auditor, where)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _STYLE_RE.findall(body)
    )
    ctx.audit("view_report", device, detail="html")
    response = HTMLResponse(body)
    response.headers["content-security-policy"] = (
        f"default-src 'none'; style-src {hashes or 'none'}; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    )
    return response


@page(AUDITOR)
def report_pdf(ctx: Ctx) -> Response:
    from hq.console.pdf import render_pdf

    device = _device(ctx)
    with evidence_store(ctx.console.config) as (store, where):
        view = ledger_view(store, where, device)
        data = render_pdf(view.verdicts, view.auditor, where)
    ctx.audit("view_report", device, detail="pdf")
    return Response(
        data,
        media_type="application/pdf",
        headers={"content-disposition": f'inline; filename="raqib-report-{device}.pdf"'},
    )


@page(AUDITOR)
def export_segment(ctx: Ctx) -> Response:
    """A held segment decrypted with HQ's key into its MP4; every export is logged."""
    from agent.evidence.sealing import open_segment
    from agent.pki import HqKeys

    device, name = _device(ctx), str(ctx.request.path_params["name"])
    target = f"{device}/{name}"
    with evidence_store(ctx.console.config) as (store, _where):
        found: list[Footage] = [f for f in store.held(device) if f.name == name]
        if not found:
            ctx.audit("export_segment", target, "failed", "not held")
            return ctx.render("error.html", 404, message="HQ holds no such segment.")
        sealed = found[0].head(MAX_EXPORT_BYTES)
        sha = hashlib.sha256(sealed).hexdigest()
    try:
        opened = open_segment(sealed, HqKeys.load(ctx.console.config.hq.keys_dir).encryption)
    except RaqibError as exc:
        ctx.audit("export_segment", target, "failed", f"sha256 {sha}: {exc}")
        return ctx.render("error.html", 422, message=f"The segment cannot be opened: {exc}")
    state = "complete" if opened.complete else "truncated"
    ctx.audit("export_segment", target, "ok", f"sha256 {sha}, {state}")
    stem = name.rsplit(".", 1)[0]
    return Response(
        opened.plaintext,
        media_type="video/mp4",
        headers={"content-disposition": f'attachment; filename="{stem}.mp4"'},
    )


# -- the console's audit trail ------------------------------------------------------------

AUDIT_COLUMNS: Final = (
    "id",
    "at",
    "actor",
    "role",
    "action",
    "target",
    "outcome",
    "address",
    "detail",
    "hash",
)


@page(AUDITOR)
def audit_log_page(ctx: Ctx) -> Response:
    actor = ctx.request.query_params.get("actor", "").strip()[:64] or None
    entries = ctx.console.store.audit.entries(300, actor=actor)
    checked, broken = ctx.console.store.audit.verify_chain()
    ctx.audit("view_audit_log", actor or "all")
    return ctx.render(
        "audit_log.html", entries=entries, actor=actor or "", checked=checked, broken=broken
    )


@page(AUDITOR)
def audit_log_csv(ctx: Ctx) -> Response:
    ctx.audit("export_audit_log", "all", detail="csv")
    entries = ctx.console.store.audit.entries(0, oldest_first=True)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(AUDIT_COLUMNS)
    for entry in entries:
        writer.writerow([_cell(entry[c]) for c in AUDIT_COLUMNS])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="raqib-console-audit.csv"'},
    )


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = str(value)
    return (
        "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(text) else text
    )


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
