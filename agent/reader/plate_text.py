"""Canonical plate text: one ASCII spelling per plate, so reads and watchlists compare.

The recogniser emits a raw token string: digits, Latin capitals and, for Moroccan
plates, one Arabic letter (e.g. ``"12345ب6"``). :func:`canonicalize` turns it into
the canonical text and names the format:

- ``MA`` Moroccan: ``SERIAL-L-REGION``, serial 1-5 digits, region 1-89, the Arabic
  letter transliterated with :data:`ARABIC_TO_LATIN` (``12345-B-6``); and the
  temporary (W18) series ``NNNNNN WW`` as ``SERIAL-WW`` (``599625-WW``).
- ``FR`` French: SIV ``AB-123-CD`` (letters without I, O, U; not ``000``) or the
  old FNI ``123-AB-45`` (1-4 digits, 1-3 letters, department 01-95, 2A, 2B, 971-976).
- ``UNKNOWN``: anything else that has letters or digits, as upper-case
  alphanumerics only (``"ab 12-x"`` -> ``AB12X``).

OCR confusions (0/O, 1/I, 8/B ...) are not guessed here: that is the matcher's job.
See docs/plates.md.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from agent.reads import PlateFormat

ARABIC_TO_LATIN: Final[dict[str, str]] = {
    "\u0623": "A",  # alif with hamza above
    "\u0628": "B",  # ba
    "\u062f": "D",  # dal
    "\u0647": "H",  # heh
    "\u0648": "W",  # waw
    "\u0637": "T",  # tah
    "\u064a": "Y",  # yeh
    "\u0634": "SH",  # sheen
}
"""The fixed transliteration of the Moroccan series letter (see docs/plates.md)."""

LATIN_TO_ARABIC: Final[dict[str, str]] = {v: k for k, v in ARABIC_TO_LATIN.items()}

_ARABIC_VARIANTS: Final[dict[str, str]] = {
    "\u0627": "\u0623",  # bare alif -> alif with hamza
    "\u0625": "\u0623",  # alif with hamza below -> alif with hamza above
    "\u0622": "\u0623",  # alif madda -> alif with hamza above
    "\u06be": "\u0647",  # heh doachashmee (the joined heh drawn on plates) -> heh
    "\u06c1": "\u0647",  # heh goal -> heh
    "\u0629": "\u0647",  # teh marbuta -> heh
    "\u0649": "\u064a",  # alef maksura -> yeh
    "\u06cc": "\u064a",  # farsi yeh -> yeh
}

_MA_LETTERS: Final[str] = "|".join(sorted(ARABIC_TO_LATIN.values(), key=len, reverse=True))
_MA_CANONICAL = re.compile(rf"^(\d{{1,5}})-({_MA_LETTERS})-(\d{{1,2}})$")
_MA_RAW = re.compile(rf"^(\d{{1,5}})([{''.join(ARABIC_TO_LATIN)}])(\d{{1,2}})$")
_MA_TEMPORARY = re.compile(r"^(\d{1,6})-?WW$")
_SIV_LETTERS = "A-HJ-NP-TV-Z"  # no I, O, U
_SIV = re.compile(rf"^([{_SIV_LETTERS}]{{2}})-?(\d{{3}})-?([{_SIV_LETTERS}]{{2}})$")
_FNI = re.compile(r"^(\d{1,4})-?([A-Z]{1,3})-?(\d{2}|2A|2B|97[1-6])$")
_UNKNOWN = re.compile(r"^[A-Z0-9]{2,16}$")
_SEPARATORS = re.compile(r"[\s\-|_.·:/\u200e\u200f\u0640]+")  # incl. RTL marks and tatweel


def _fold(raw: str) -> str:
    """NFKC (folds Arabic presentation forms), upper-case, Arabic variants unified.

    Arabic-Indic digits (U+0660-0669, U+06F0-06F9) become ASCII digits.
    """
    text = unicodedata.normalize("NFKC", raw).upper()
    out = []
    for ch in text:
        if "\u0660" <= ch <= "\u0669" or "\u06f0" <= ch <= "\u06f9":
            out.append(str(unicodedata.digit(ch)))
        else:
            out.append(_ARABIC_VARIANTS.get(ch, ch))
    return "".join(out)


def _region_ok(region: str) -> bool:
    return 1 <= int(region) <= 89


def _serial_ok(serial: str) -> bool:
    return int(serial) >= 1


def _fni_department_ok(dept: str) -> bool:
    if dept in {"2A", "2B"} or dept.startswith("97"):
        return True
    return 1 <= int(dept) <= 95 and dept != "20"


def _moroccan(compact: str, dashed: str) -> str | None:
    """Canonical MA text from an Arabic-letter raw string or an already canonical one."""
    m = _MA_TEMPORARY.match(compact)
    if m is not None:
        return f"{int(m.group(1))}-WW" if _serial_ok(m.group(1)) else None
    m = _MA_RAW.match(compact)
    if m is not None:
        serial, letter, region = m.group(1), ARABIC_TO_LATIN[m.group(2)], m.group(3)
    else:
        m = _MA_CANONICAL.match(dashed)
        if m is None:
            return None
        serial, letter, region = m.groups()
    if not (_serial_ok(serial) and _region_ok(region)):
        return None
    return f"{int(serial)}-{letter}-{int(region)}"


def _french(compact: str) -> str | None:
    m = _SIV.match(compact)
    if m is not None and m.group(2) != "000":
        return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    m = _FNI.match(compact)
    if m is not None and _fni_department_ok(m.group(3)) and int(m.group(1)) >= 1:
        return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    return None


def canonicalize(raw: str) -> tuple[str, PlateFormat]:
    """Canonical text and format of a raw read (recogniser tokens or human input).

    Separators (spaces, dashes, bars, RTL marks) are ignored. A Moroccan series
    letter may be given in Arabic or already transliterated with dashes
    (``12345-B-6``); a dashed ``123-B-45`` is read as Moroccan, not as a one-letter
    FNI plate, since the device works in Morocco. Returns ``("", "UNKNOWN")`` when
    nothing alphanumeric is left.
    """
    folded = _fold(raw)
    dashed = "-".join(part for part in _SEPARATORS.split(folded) if part)
    compact = dashed.replace("-", "")
    moroccan = _moroccan(compact, dashed)
    if moroccan is not None:
        return moroccan, "MA"
    french = _french(compact)
    if french is not None:
        return french, "FR"
    latin = "".join(ARABIC_TO_LATIN.get(ch, ch) for ch in compact)
    return "".join(ch for ch in latin if ch.isascii() and ch.isalnum()), "UNKNOWN"


def raw_tokens(text: str) -> str:
    """The recogniser's token string for a canonical text: the inverse of :func:`canonicalize`.

    ``12345-B-6`` -> ``"12345ب6"``; ``AB-123-CD`` -> ``"AB123CD"``.
    """
    m = _MA_CANONICAL.match(text)
    if m is not None:
        return f"{m.group(1)}{LATIN_TO_ARABIC[m.group(2)]}{m.group(3)}"
    return text.replace("-", "")


def is_valid(text: str, fmt: PlateFormat) -> bool:
    """True if ``text`` is the canonical spelling of a plate of format ``fmt``."""
    if fmt == "MA":
        m = _MA_TEMPORARY.match(text)
        if m is not None:
            return "-" in text and _serial_ok(m.group(1)) and not m.group(1).startswith("0")
        m = _MA_CANONICAL.match(text)
        return (
            m is not None
            and _serial_ok(m.group(1))
            and _region_ok(m.group(3))
            and not m.group(1).startswith("0")
            and not m.group(3).startswith("0")
        )
    if fmt == "FR":
        return "-" in text and _french(text) == text
    if fmt == "UNKNOWN":
        return _UNKNOWN.match(text) is not None
    return False  # "EU" formats are not read yet
