"""Canonical plate text: one ASCII spelling per plate, so reads and watchlists compare.

The recogniser emits a raw token string: digits, Latin capitals and, for Moroccan
plates, one Arabic letter (e.g. ``"12345ب6"``). :func:`canonicalize` turns it into
the canonical text and names the format:

- ``MA`` Moroccan (tried first):

  - cars, one- or two-line: ``SERIAL-L-REGION``, serial 1-5 digits, region 1-89,
    the Arabic letter transliterated with :data:`ARABIC_TO_LATIN` (``12345-B-6``);
  - temporary series ``NNNNNN WW`` as ``SERIAL-WW`` (``599625-WW``);
  - motorcycles (two lines: region over a 6-digit serial): ``REGION-SSSSSS``
    (``8-013353``, leading zeros of the serial kept), read from ``8|013353``;
    a bare ``8013353`` (no separator) is *not* taken for one;
  - the W18 series: ``W18-SERIAL`` (``W18-123456``, serial 1-6 digits);
  - state vehicles: ``SSSSSS-M`` (``123456-M``; the plate shows a red ``M`` or
    the word المغرب, both read as the token ``M``);
  - diplomatic: ``CD-SSS-EE`` / ``CMD-SSS-EE`` (serial 1-3 digits, embassy
    number 01-99: ``CD12319`` -> ``CD-123-19``).
- ``FR`` French: SIV ``AB-123-CD`` (letters without I, O, U; not ``000``) or the
  old FNI ``123-AB-45`` (1-4 digits, 1-3 letters, department 01-95, 2A, 2B, 971-976).
- ``EU`` other EU plates (country code in the blue band not part of the text):
  the compact text must match one of :data:`EU_PATTERNS` (ES, DE, IT, BE, NL, PT,
  PL, RO, GB); canonical text = runs of letters and of digits joined by ``-``
  (``1234BCD`` -> ``1234-BCD``, ``1ABC123`` -> ``1-ABC-123``).
- ``UNKNOWN``: anything else that has letters or digits, as upper-case
  alphanumerics only (``"ab 12-x"`` -> ``AB12X``).

:func:`raw_tokens` gives the recogniser's one-line token string of a canonical
text; :func:`two_line_parts` the two lines of a plate that has a two-line layout.

OCR confusions (0/O, 1/I, 8/B ...) are not guessed here: that is the matcher's job.
See docs/plates.md.
"""

from __future__ import annotations

import functools
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
_ARABIC_LETTERS: Final = frozenset(ARABIC_TO_LATIN)


def has_arabic_letter(raw: str) -> bool:
    """True when a raw read holds a Moroccan series letter: a read of a Moroccan plate,
    which the rules for Latin reads (bare strokes, glyphs the grammar may not skip, foreign
    layouts) leave alone."""
    return not _ARABIC_LETTERS.isdisjoint(raw)


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
_MA_MOPED = re.compile(r"^(\d{1,2})-(\d{6})$")  # on the dashed text: a separator is required
_MA_W18 = re.compile(r"^W18-?(\d{1,6})$")
_MA_STATE = re.compile(r"^(\d{6})-?M$")
_MA_DIPLOMATIC = re.compile(r"^(CMD|CD)-?(\d{1,3})-?(\d{2})$")
_STATE_WORD: Final = "\u0627\u0644\u0645\u063a\u0631\u0628"  # المغرب, read as the token M
NL_LETTERS: Final = "BDFGHJKLMNPRSTVWXZ"
"""The letters of Dutch plates of the shapes in :data:`EU_PATTERNS` (side codes 7 to 10,
issued since 2005): no vowel (none since 1978, nor ``Y`` since side code 7), no ``C`` or
``Q`` (too like a ``0``); ``M`` for motorcycles and ``W`` for trailers. A read of those
shapes with another letter is no Dutch plate: a Bucharest ``B-839-HAR`` read ``B839AR``
(its ``H`` dropped) or the vanity ``GOOGLE`` read ``G006LE`` (models/recogniser.md, "Dutch and
Polish letters")."""
_NL = f"[{NL_LETTERS}]"
PL_FIRST_LETTERS: Final = "BCDEFGHKLNOPRSTUWZ"
"""The first letter of a Polish plate: its voivodeship's (``W`` Masovia, ``K`` Lesser Poland
...), ``H`` for the uniformed services, ``U`` for the army. A read of the Polish shape that
starts otherwise is no Polish plate, such as a Greek ``XTX 582`` whose sticker under the band
is read as a ``0``, ``XTX0582`` (models/recogniser.md, "Dutch and Polish letters")."""
EU_PATTERNS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("ES", re.compile(r"^\d{4}[BCDFGHJKLMNPRSTVWXYZ]{3}$")),
    ("BE", re.compile(r"^[12][A-Z]{3}\d{3}$")),
    ("NL", re.compile(rf"^{_NL}{{2}}\d{{3}}{_NL}$")),
    ("NL", re.compile(rf"^\d{_NL}{{3}}\d{{2}}$")),
    ("NL", re.compile(rf"^{_NL}\d{{3}}{_NL}{{2}}$")),
    ("NL", re.compile(rf"^\d{{2}}{_NL}{{3}}\d$")),
    ("PT", re.compile(r"^[A-Z]{2}\d{2}[A-Z]{2}$")),
    ("PT", re.compile(r"^\d{2}[A-Z]{2}\d{2}$")),
    ("PT", re.compile(r"^\d{4}[A-Z]{2}$")),
    ("IT", re.compile(r"^[A-Z]{2}\d{3}[A-Z]{2}$")),
    ("DE", re.compile(r"^(?=.{4})[A-Z]{2,5}[1-9]\d{0,3}[EH]?$")),
    ("PL", re.compile(rf"^[{PL_FIRST_LETTERS}][A-Z]{{1,2}}\d{{4,5}}$")),
    ("RO", re.compile(r"^B\d{2,3}[A-Z]{3}$")),
    ("GB", re.compile(r"^[A-Z]{2}\d{2}[A-Z]{3}$")),
)
"""``(country, pattern)`` of the EU plates read as format ``EU``, on the compact
upper-case text (no separators). Tried after MA and FR, so an IT-shaped text that
is a valid French SIV is FR. Where two countries share a shape (DE/PL), the first wins."""
_RUNS = re.compile(r"[A-Z]+|\d+")
_UNKNOWN = re.compile(r"^[A-Z0-9]{2,16}$")
_SEPARATORS = re.compile(r"[\s\-|_.·:/\u200e\u200f\u0640]+")  # incl. RTL marks and tatweel


def _fold(raw: str) -> str:
    """NFKC (folds Arabic presentation forms), upper-case, Arabic variants unified.

    Arabic-Indic digits (U+0660-0669, U+06F0-06F9) become ASCII digits.
    """
    text = unicodedata.normalize("NFKC", raw).upper().replace(_STATE_WORD, "M")
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


def _moroccan_special(compact: str, dashed: str) -> str | None:
    """Motorcycle, W18, state and diplomatic plates: the canonical text, ``""`` for a
    plate of one of these shapes with a bad number, None for none of these shapes."""
    m = _MA_MOPED.match(dashed)
    if m is not None:
        region, serial = m.groups()
        return f"{int(region)}-{serial}" if _region_ok(region) and _serial_ok(serial) else ""
    m = _MA_W18.match(compact)
    if m is not None:
        return f"W18-{int(m.group(1))}" if _serial_ok(m.group(1)) else ""
    m = _MA_STATE.match(compact)
    if m is not None:
        return f"{m.group(1)}-M" if _serial_ok(m.group(1)) else ""
    m = _MA_DIPLOMATIC.match(dashed) or _MA_DIPLOMATIC.match(compact)
    if m is not None:
        kind, serial, embassy = m.groups()
        ok = _serial_ok(serial) and _serial_ok(embassy)
        return f"{kind}-{int(serial)}-{embassy}" if ok else ""
    return None


def _moroccan(compact: str, dashed: str) -> str | None:
    """Canonical MA text from an Arabic-letter raw string or an already canonical one."""
    m = _MA_TEMPORARY.match(compact)
    if m is not None:
        return f"{int(m.group(1))}-WW" if _serial_ok(m.group(1)) else None
    special = _moroccan_special(compact, dashed)
    if special is not None:
        return special or None
    m = _MA_RAW.match(compact)
    if m is not None:
        serial, letter, region = m.group(1), ARABIC_TO_LATIN[m.group(2)], m.group(3)
    else:
        m = _MA_CANONICAL.match(dashed)
        if m is None or m.group(3).startswith("0"):  # "123-SH-09" is a French FNI plate
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


def is_french_siv(text: str) -> bool:
    """True for a French plate of the current SIV series, ``AB-123-CD`` (dashes optional)."""
    m = _SIV.match(text)
    return m is not None and m.group(2) != "000"


def eu_country(compact: str) -> str | None:
    """The country (``"ES"``, ``"DE"`` ...) of the first :data:`EU_PATTERNS` entry
    ``compact`` (upper-case, no separators) matches, or None."""
    for country, pattern in EU_PATTERNS:
        if pattern.match(compact) is not None:
            return country
    return None


def _eu(compact: str) -> str | None:
    country = eu_country(compact)
    if country is None or (country == "IT" and compact[2:5] == "000"):
        return None
    return "-".join(_RUNS.findall(compact))


@functools.lru_cache(maxsize=4096)
def canonicalize(raw: str) -> tuple[str, PlateFormat]:
    """Canonical text and format of a raw read (recogniser tokens or human input).

    Cached: a photo's views and ensemble members read the same raw texts again and
    again (83 % of a photo's calls on the held-out sets; photos 1.3-1.7 % faster).

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
    eu = _eu(compact)
    if eu is not None:
        return eu, "EU"
    latin = "".join(ARABIC_TO_LATIN.get(ch, ch) for ch in compact)
    return "".join(ch for ch in latin if ch.isascii() and ch.isalnum()), "UNKNOWN"


def raw_tokens(text: str) -> str:
    """The recogniser's token string for a canonical text: the inverse of :func:`canonicalize`.

    One line, in image order: ``12345-B-6`` -> ``"12345ب6"`` (also for a two-line
    car plate: its one-line reading order); ``AB-123-CD`` -> ``"AB123CD"``;
    ``123456-M`` -> ``"123456M"``; ``CD-123-19`` -> ``"CD12319"``. A motorcycle
    plate has only a two-line layout: ``8-013353`` gives its two-line training
    label ``"8013353"`` (top line then bottom, see :func:`two_line_parts`), which
    :func:`canonicalize` does not take back (a moped read needs the separator:
    ``agent.reader.layout.logical_raw`` gives ``"8|013353"``).
    """
    m = _MA_CANONICAL.match(text)
    if m is not None:
        return f"{m.group(1)}{LATIN_TO_ARABIC[m.group(2)]}{m.group(3)}"
    return text.replace("-", "")


def two_line_parts(text: str) -> tuple[str, str] | None:
    """``(top, bottom)`` token lines of a canonical plate that has a two-line layout.

    Moroccan car ``45498-B-26`` -> ``("ب26", "45498")`` (series letter then region
    on top, serial below); motorcycle ``8-013353`` -> ``("8", "013353")``. None for
    every other plate (no two-line layout). The training label of the two-line
    composite is ``top + bottom`` (``agent.reader.layout.label_tokens``).
    """
    m = _MA_CANONICAL.match(text)
    if m is not None:
        return f"{LATIN_TO_ARABIC[m.group(2)]}{m.group(3)}", m.group(1)
    m = _MA_MOPED.match(text)
    if m is not None:
        return m.group(1), m.group(2)
    return None


UNKNOWN_PLATE_LENGTH: Final = (4, 10)
"""Shortest and longest compact text taken for a plate of a layout we do not know."""


SURE_LETTERS_ONLY: Final = 0.8
"""Confidence from which a read of letters only (a personalised plate) is taken for a plate."""


def is_plausible_unknown(raw: str, confidence: float = 0.0) -> bool:
    """True when ``raw`` reads as a plate of a layout the grammar does not know.

    Format ``UNKNOWN`` (no known layout), 4-10 Latin letters and digits, and no
    Arabic letter (a Moroccan read that fits no layout is a misread Moroccan
    plate, not a foreign one). It needs a digit unless the read is at least
    :data:`SURE_LETTERS_ONLY` sure (``confidence``): personalised plates of
    letters only (``WEFLYN``) exist, but a doubtful letters-only read is more
    often a sign or a badge. A Slovak ``BA123XY`` or a Swiss ``ZH123456``
    qualifies; ``AB``, ``ABCDE`` read at 0.5 and ``12345ب`` do not.
    """
    text, fmt = canonicalize(raw)
    if fmt != "UNKNOWN" or has_arabic_letter(raw):
        return False
    lo, hi = UNKNOWN_PLATE_LENGTH
    has_digit = any(ch.isdigit() for ch in text)
    return (
        lo <= len(text) <= hi and (has_digit or confidence >= SURE_LETTERS_ONLY) and text.isascii()
    )


def is_valid(text: str, fmt: PlateFormat) -> bool:
    """True if ``text`` is the canonical spelling of a plate of format ``fmt``."""
    if fmt in ("MA", "EU") and "-" in text and canonicalize(text) == (text, fmt):
        return True  # the special series and EU plates: the canonical spelling is a fixed point
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
    return False


def is_known_plate(raw: str) -> bool:
    """True when ``raw`` canonicalises to a valid plate of a known format (MA, FR, EU)."""
    text, fmt = canonicalize(raw)
    return fmt != "UNKNOWN" and is_valid(text, fmt)
