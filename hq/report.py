"""The auditor's HTML report: one self-contained page to attach to a case file.

It names, per file, the verdict and why, the device, the officer, the recording
times (UTC), the GNSS fix and the SHA-256; then, per device, the ledger chain as
HQ holds it (sequence, type, time, entry hash, previous hash, signature check),
so a reader can follow the chain by hand.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from pathlib import Path

from agent import __version__
from agent.fsutil import atomic_write
from hq.audit import GOOD, Auditor, Chain, Verdict

_STYLE = """
body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:90%}
td,th{border:1px solid #aaa;padding:3px 6px;text-align:left;vertical-align:top}
.ok{background:#dfd}.bad{background:#fdd}code{font-size:85%;word-break:break-all}
"""


def _utc(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _e(value: object) -> str:
    return html.escape("-" if value is None or value == "" else str(value))


def _gnss(verdict: Verdict) -> str:
    fix = verdict.gnss
    if not fix:
        return "-"
    return f"{fix.get('lat')}, {fix.get('lon')} (±{fix.get('accuracy_m')} m)"


def _verdict_rows(verdicts: Iterable[Verdict]) -> str:
    rows = []
    for v in verdicts:
        css = "ok" if v.verdict in GOOD else "bad"
        rows.append(
            f"<tr class={css}><td>{_e(Path(v.file).name)}</td><td><b>{_e(v.verdict)}</b><br>"
            f"{_e(v.reason)}</td><td>{_e(v.device)}</td><td>{_e(v.officer)}</td>"
            f"<td>{_e(v.segment)} / {_e(v.ledger_seq)}</td>"
            f"<td>{_utc(v.start)}<br>{_utc(v.end)}</td><td>{_e(_gnss(v))}</td>"
            f"<td><code>{_e(v.sha256)}</code></td><td>{_e(', '.join(v.flags))}</td></tr>"
        )
    return "".join(rows)


def _chain_rows(chain: Chain) -> str:
    rows = []
    for seq in sorted(chain.entries):
        entry = chain.entries[seq]
        ok = chain.signature_ok[seq]
        what = (
            f"segment {entry.segment.number} <code>{_e(entry.segment.sha256)}</code>"
            if entry.segment is not None
            else _e(f"{(entry.action or {}).get('name')} by {(entry.action or {}).get('by')}")
        )
        rows.append(
            f"<tr class={'ok' if ok else 'bad'}><td>{seq}</td><td>{_utc(entry.at)}</td>"
            f"<td>{what}</td><td><code>{entry.hash}</code></td><td><code>{entry.prev}</code></td>"
            f"<td>{'valid' if ok else 'INVALID'}</td></tr>"
        )
    return "".join(rows)


def render_report(verdicts: list[Verdict], auditor: Auditor, hq_root: str) -> str:
    good = sum(v.verdict in GOOD for v in verdicts)
    devices = sorted({v.device for v in verdicts if v.device})
    parts = [
        "<!doctype html><html><head><meta charset=utf-8><title>Raqib evidence verification"
        f"</title><style>{_STYLE}</style></head><body>",
        "<h1>Evidence verification report</h1>",
        f"<p>Generated {_utc(dt.datetime.now(dt.UTC).timestamp())} by raqib {__version__} "
        f"against the HQ evidence store <code>{_e(hq_root)}</code>. "
        f"{good} of {len(verdicts)} files verified.</p>",
        "<h2>Files</h2><table><tr><th>file</th><th>verdict</th><th>device</th><th>officer</th>"
        "<th>segment / ledger entry</th><th>recorded (start, end)</th><th>GNSS</th>"
        "<th>SHA-256 of the file</th><th>flags</th></tr>",
        _verdict_rows(verdicts),
        "</table>",
    ]
    for device in devices:
        chain = auditor.chain(device)
        parts += [
            f"<h2>Ledger chain of {_e(device)}</h2>",
            f"<p>{len(chain.entries)} entries held at HQ; each names the SHA-256 of the one "
            "before and is signed by the device's enrolled Ed25519 key.</p>",
            "<table><tr><th>seq</th><th>time</th><th>entry</th><th>entry hash</th>"
            "<th>previous hash</th><th>signature</th></tr>",
            _chain_rows(chain),
            "</table>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: Path, verdicts: list[Verdict], auditor: Auditor, hq_root: str) -> None:
    """Write the report crash-safely; raises StorageError if it cannot be written."""
    atomic_write(path, render_report(verdicts, auditor, hq_root).encode("utf-8"), 0o644)
