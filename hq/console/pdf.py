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


class _Report(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self.unicode = FONT.exists()
        if self.unicode:
            self.add_font("body", "", str(FONT))
            self.add_font("body", "B", str(FONT_BOLD if FONT_BOLD.exists() else FONT))
        self.family = "body" if self.unicode else "helvetica"
        self.set_auto_page_break(auto=True, margin=12)

    def text_of(self, value: object) -> str:
        text = "-" if value is None or value == "" else str(value)
        return text if self.unicode else text.encode("latin-1", "replace").decode("latin-1")

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(self.family, "", 7)
        self.cell(
            0, 5, self.text_of(f"Raqib evidence verification - page {self.page_no()}"), align="C"
        )


def render_pdf(verdicts: list[Verdict], auditor: Auditor, hq_root: str) -> bytes:
    """The report as PDF bytes."""
    pdf = _Report()
    pdf.add_page()
    pdf.set_font(pdf.family, "B", 15)
    pdf.cell(0, 9, "Evidence verification report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.family, "", 9)
    good = sum(v.verdict in GOOD for v in verdicts)
    pdf.multi_cell(
        0,
        5,
        pdf.text_of(
            f"Generated {_utc(dt.datetime.now(dt.UTC).timestamp())} by raqib {__version__} "
            f"against the HQ evidence store {hq_root}. {good} of {len(verdicts)} files verified."
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(2)
    _files(pdf, verdicts)
    for device in sorted({v.device for v in verdicts if v.device}):
        _chain(pdf, auditor, device)
    return bytes(pdf.output())


def _files(pdf: _Report, verdicts: list[Verdict]) -> None:
    pdf.set_font(pdf.family, "B", 11)
    pdf.cell(0, 7, "Files", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.family, "", 7)
    widths = (40, 62, 26, 22, 20, 36, 71)
    with pdf.table(col_widths=widths, width=sum(widths), line_height=3.6) as table:
        table.row(
            [
                "file",
                "verdict and why",
                "device",
                "officer",
                "segment / entry",
                "recorded",
                "SHA-256",
            ]
        )
        for v in verdicts:
            row = table.row()
            for cell in (
                Path(v.file).name,
                f"{v.verdict.upper()}: {v.reason}",
                v.device,
                v.officer,
                f"{v.segment if v.segment is not None else '-'} / "
                f"{v.ledger_seq if v.ledger_seq is not None else '-'}",
                f"{_utc(v.start)}\n{_utc(v.end)}",
                v.sha256,
            ):
                row.cell(pdf.text_of(cell))
    pdf.ln(3)


def _chain(pdf: _Report, auditor: Auditor, device: str) -> None:
    chain = auditor.chain(device)
    pdf.set_font(pdf.family, "B", 11)
    pdf.cell(0, 7, pdf.text_of(f"Ledger chain of {device}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.family, "", 7)
    pdf.multi_cell(
        0,
        4,
        pdf.text_of(
            f"{len(chain.entries)} entries held at HQ; each names the SHA-256 of the one before "
            "and is signed by the device's enrolled Ed25519 key."
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    widths = (12, 36, 40, 90, 90, 18)
    with pdf.table(col_widths=widths, width=sum(widths), line_height=3.6) as table:
        table.row(["seq", "time", "entry", "entry hash", "previous hash", "signature"])
        for seq in sorted(chain.entries):
            entry = chain.entries[seq]
            what = (
                f"segment {entry.segment.number}"
                if entry.segment is not None
                else f"{(entry.action or {}).get('name')} by {(entry.action or {}).get('by')}"
            )
            ok = chain.signature_ok[seq]
            row = table.row()
            for cell in (
                seq,
                _utc(entry.at),
                what,
                entry.hash,
                entry.prev,
                "valid" if ok else "INVALID",
            ):
                row.cell(pdf.text_of(cell))
    pdf.ln(3)
