"""Writes samples/route.nmea: a patrol car's 1 Hz GNSS log through central Rabat (GGA + RMC)."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from firmware_glue.nmea import with_checksum

START = (34.0209, -6.8416)  # Avenue Mohammed V, Rabat
START_TIME = 1_790_000_000  # a fixed instant, so the file is reproducible


def _dm(value: float, degree_digits: int) -> str:
    degrees = int(abs(value))
    minutes = (abs(value) - degrees) * 60
    return f"{degrees:0{degree_digits}d}{minutes:07.4f}"


def sentences(seconds: int) -> list[str]:
    out = []
    for i in range(seconds):
        lat = START[0] + 0.00012 * i
        lon = START[1] + 0.00008 * i + 0.0002 * math.sin(i / 20)
        stamp = time.gmtime(START_TIME + i)
        hhmmss = time.strftime("%H%M%S", stamp) + ".00"
        ddmmyy = time.strftime("%d%m%y", stamp)
        ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
        out.append(
            with_checksum(
                f"GPGGA,{hhmmss},{_dm(lat, 2)},{ns},{_dm(lon, 3)},{ew},1,09,0.9,52.0,M,0.0,M,,"
            )
        )
        out.append(
            with_checksum(
                f"GPRMC,{hhmmss},A,{_dm(lat, 2)},{ns},{_dm(lon, 3)},{ew},021.6,033.0,{ddmmyy},,,A"
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("samples/route.nmea"))
    parser.add_argument("--seconds", type=int, default=300)
    args = parser.parse_args()
    args.out.write_text("\n".join(sentences(args.seconds)) + "\n", encoding="ascii")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
