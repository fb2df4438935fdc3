"""The auditor's report as PDF (fpdf2): the same facts as ``hq.report``'s HTML, for a case file.

Per file: verdict and why, device, officer, segment and ledger entry, recording
times (UTC), SHA-256; then each device's ledger chain (sequence, time, entry
hash, previous hash, signature check). DejaVu Sans (Debian's ``fonts-dejavu-core``)
is embedded when present so any name prints; otherwise a core font with the
characters it cannot print replaced.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Final

from fpdf import FPDF

from agent import __version__
from hq.audit import GOOD, Auditor, Verdict

FONT: Final = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FONT_BOLD: Final = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def _utc(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class _Report:
    """An A4 landscape FPDF document with the body font chosen once."""

    def __init__(self) -> None:
        self.pdf = FPDF(orientation="L", unit="mm", format="A4")
        self.unicode = FONT.exists()
        if self.unicode:
            self.pdf.add_font("body", "", str(FONT))
            self.pdf.add_font("body", "B", str(FONT_BOLD if FONT_BOLD.exists() else FONT))
        self.family = "body" if self.unicode else "helvetica"
        self.pdf.set_auto_page_break(auto=True, margin=12)

    def text_of(self, value: object) -> str:
        text = "-" if value is None or value == "" else str(value)
        return text if self.unicode else text.encode("latin-1", "replace").decode("latin-1")

    def font(self, size: float, bold: bool = False) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)

    def heading(self, text: str, size: float = 11) -> None:
        self.font(size, bold=True)
        self.pdf.cell(0, 7, self.text_of(text), new_x="LMARGIN", new_y="NEXT")

    def para(self, text: str, size: float = 8) -> None:
        self.font(size)
        self.pdf.multi_cell(0, 4.5, self.text_of(text), new_x="LMARGIN", new_y="NEXT")

    def table(self, widths: tuple[float, ...], head: list[str], rows: list[list[object]]) -> None:
        self.font(7)
        with self.pdf.table(col_widths=widths, width=self.pdf.epw, line_height=3.6) as table:
            table.row(head)
            for cells in rows:
                row = table.row()
                for cell in cells:
                    row.cell(self.text_of(cell))
        self.pdf.ln(3)


def render_pdf(verdicts: list[Verdict], auditor: Auditor, hq_root: str) -> bytes:
    """The report as PDF bytes."""
    doc = _Report()
    doc.pdf.add_page()
    doc.heading("Evidence verification report", 15)
    good = sum(v.verdict in GOOD for v in verdicts)
    doc.para(
        f"Generated {_utc(dt.datetime.now(dt.UTC).timestamp())} by raqib {__version__} "
        f"against the HQ evidence store {hq_root}. {good} of {len(verdicts)} files verified.",
        9,
    )
    doc.heading("Files")
    doc.table(
        (40, 62, 26, 22, 20, 36, 71),
        ["file", "verdict and why", "device", "officer", "segment / entry", "recorded", "SHA-256"],
        [_file_row(v) for v in verdicts],
    )
    for device in sorted({v.device for v in verdicts if v.device}):
        _chain(doc, auditor, device)
    return bytes(doc.pdf.output())


def _file_row(v: Verdict) -> list[object]:
    return [
        Path(v.file).name,
        f"{v.verdict.upper()}: {v.reason}",
        v.device,
        v.officer,
        f"{_dash(v.segment)} / {_dash(v.ledger_seq)}",
        f"{_utc(v.start)}\n{_utc(v.end)}",
        v.sha256,
    ]


def _chain(doc: _Report, auditor: Auditor, device: str) -> None:
    chain = auditor.chain(device)
    doc.heading(f"Ledger chain of {device}")
    doc.para(
        f"{len(chain.entries)} entries held at HQ; each names the SHA-256 of the one before "
        "and is signed by the device's enrolled Ed25519 key."
    )
    rows: list[list[object]] = []
    for seq in sorted(chain.entries):
        entry = chain.entries[seq]
        action = entry.action or {}
        what = (
            f"segment {entry.segment.number}"
            if entry.segment is not None
            else f"{action.get('name')} by {action.get('by')}"
        )
        ok = chain.signature_ok[seq]
        rows.append(
            [seq, _utc(entry.at), what, entry.hash, entry.prev, "valid" if ok else "INVALID"]
        )
    doc.table(
        (12, 36, 40, 90, 90, 18),
        ["seq", "time", "entry", "entry hash", "previous hash", "signature"],
        rows,
    )


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)
