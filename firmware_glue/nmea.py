"""NMEA 0183 sentences from a GNSS receiver: checksum, RMC and GGA, nothing else.

Pure functions: bytes of one sentence in, a fix or a precise error out. Bad
sentences (noise on a serial line is normal) raise ``NmeaError`` and are skipped
by the adapters.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from functools import reduce

from agent.errors import InputError
from agent.reads import GnssFix

MAX_SENTENCE = 128  # NMEA allows 82 characters; leave room for vendor extensions
HDOP_TO_METRES = 5.0  # rough user-equivalent range error per unit of HDOP


class NmeaError(InputError):
    """A sentence is malformed, has a bad checksum, or is not a usable fix."""


@dataclass(frozen=True, slots=True)
class Gga:
    lat: float
    lon: float
    quality: int
    hdop: float


def checksum(body: str) -> str:
    """The two hex digits of the XOR of the characters between '$' and '*'."""
    return f"{reduce(lambda acc, ch: acc ^ ord(ch), body, 0):02X}"


def with_checksum(body: str) -> str:
    return f"${body}*{checksum(body)}"


def split_sentence(line: str) -> list[str]:
    """Fields of a checksummed sentence; raises NmeaError if anything is off."""
    line = line.strip()
    if len(line) > MAX_SENTENCE:
        raise NmeaError("sentence too long")
    if not line.startswith("$") or "*" not in line:
        raise NmeaError(f"not an NMEA sentence: {line[:20]!r}")
    body, _, given = line[1:].rpartition("*")
    if given.upper() != checksum(body):
        raise NmeaError(f"bad checksum in {body[:6]!r}")
    return body.split(",")


def _coord(value: str, hemisphere: str, degree_digits: int) -> float:
    if not value or hemisphere not in "NSEW" or not hemisphere:
        raise NmeaError("empty coordinate")
    try:
        degrees = int(value[:degree_digits])
        minutes = float(value[degree_digits:])
    except ValueError as exc:
        raise NmeaError(f"bad coordinate {value!r}") from exc
    result = degrees + minutes / 60.0
    return -result if hemisphere in "SW" else result


def parse_rmc(fields: list[str]) -> tuple[float, float, float]:
    """(lat, lon, unix time) from an RMC sentence with status A (valid)."""
    if len(fields) < 10:
        raise NmeaError("RMC sentence too short")
    if fields[2] != "A":
        raise NmeaError("RMC reports no fix")
    hhmmss, ddmmyy = fields[1], fields[9]
    try:
        stamp = calendar.timegm(
            (
                2000 + int(ddmmyy[4:6]),
                int(ddmmyy[2:4]),
                int(ddmmyy[0:2]),
                int(hhmmss[0:2]),
                int(hhmmss[2:4]),
                int(hhmmss[4:6]),
                0,
                0,
                0,
            )
        ) + float("0" + hhmmss[6:] if hhmmss[6:] else "0")
    except (ValueError, IndexError) as exc:
        raise NmeaError("RMC time or date is malformed") from exc
    return _coord(fields[3], fields[4], 2), _coord(fields[5], fields[6], 3), float(stamp)


def parse_gga(fields: list[str]) -> Gga:
    """Position, fix quality and HDOP from a GGA sentence."""
    if len(fields) < 9:
        raise NmeaError("GGA sentence too short")
    try:
        quality = int(fields[6] or "0")
        hdop = float(fields[8] or "99")
    except ValueError as exc:
        raise NmeaError("GGA quality or HDOP is malformed") from exc
    if quality == 0:
        raise NmeaError("GGA reports no fix")
    return Gga(_coord(fields[2], fields[3], 2), _coord(fields[4], fields[5], 3), quality, hdop)


class FixAssembler:
    """Combines RMC (time, position) and GGA (accuracy) sentences into fixes."""

    def __init__(self) -> None:
        self._hdop = 5.0

    def feed(self, line: str) -> GnssFix | None:
        """A new fix when the line is a valid RMC; GGA lines update the accuracy."""
        fields = split_sentence(line)
        kind = fields[0][2:]
        if kind == "GGA":
            self._hdop = parse_gga(fields).hdop
            return None
        if kind == "RMC":
            lat, lon, stamp = parse_rmc(fields)
            return GnssFix(lat, lon, round(self._hdop * HDOP_TO_METRES, 1), stamp)
        return None
