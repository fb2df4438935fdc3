"""GNSS: NMEA parsing with checksums, the replay simulator, gpsd reports."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from firmware_glue.gnss import NmeaReplayGnss, parse_gpsd_tpv
from firmware_glue.nmea import FixAssembler, NmeaError, split_sentence, with_checksum

pytestmark = pytest.mark.device

RMC = with_checksum("GPRMC,141320.00,A,3401.2540,N,00650.4960,W,021.6,033.0,210926,,,A")
GGA = with_checksum("GPGGA,141320.00,3401.2540,N,00650.4960,W,1,09,0.9,52.0,M,0.0,M,,")


def test_rmc_after_gga_gives_a_fix_with_position_time_and_accuracy() -> None:
    assembler = FixAssembler()
    assert assembler.feed(GGA) is None
    fix = assembler.feed(RMC)
    assert fix is not None
    assert fix.lat == pytest.approx(34.0209, abs=1e-4)
    assert fix.lon == pytest.approx(-6.8416, abs=1e-4)
    assert fix.accuracy_m == pytest.approx(4.5)
    assert time.gmtime(fix.timestamp)[:6] == (2026, 9, 21, 14, 13, 20)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (RMC[:-2] + "00", "bad checksum"),
        ("GPRMC,no,dollar*00", "not an NMEA sentence"),
        (with_checksum("GPRMC,141320.00,V,,,,,,,210926,,,N"), "no fix"),
        (with_checksum("GPGGA,141320.00,3401.2540,N,00650.4960,W,0,00,,,M,,M,,"), "no fix"),
        (with_checksum("GPRMC,14"), "too short"),
        ("$" + "A" * 200 + "*00", "too long"),
    ],
)
def test_bad_sentences_are_refused_with_a_reason(line: str, reason: str) -> None:
    with pytest.raises(NmeaError, match=reason):
        FixAssembler().feed(line)


def test_checksum_covers_the_whole_body() -> None:
    fields = split_sentence(RMC)
    assert fields[0] == "GPRMC"
    tampered = RMC.replace("3401.2540", "3401.2541")
    with pytest.raises(NmeaError):
        split_sentence(tampered)


def test_replay_simulator_publishes_fixes_and_skips_noise(tmp_path: Path) -> None:
    log = tmp_path / "route.nmea"
    log.write_text("\n".join(["garbage line", GGA, RMC[:-2] + "00", RMC]) + "\n", encoding="ascii")
    gnss = NmeaReplayGnss(log, interval_s=0.01)
    gnss.start()
    try:
        deadline = time.monotonic() + 5
        while gnss.latest() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        fix = gnss.latest()
    finally:
        gnss.stop()
    assert fix is not None
    assert fix.lat == pytest.approx(34.0209, abs=1e-4)
    assert fix.timestamp == pytest.approx(time.time(), abs=5)  # stamped when replayed
    assert gnss.bad_sentences >= 2


def test_stale_fix_is_not_reported(tmp_path: Path) -> None:
    log = tmp_path / "route.nmea"
    log.write_text(GGA + "\n" + RMC + "\n", encoding="ascii")
    gnss = NmeaReplayGnss(log, interval_s=0.01, max_age_s=0.2)
    gnss.start()
    try:
        deadline = time.monotonic() + 5
        while gnss.latest() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gnss.latest() is not None
        gnss.stop()  # no new fixes from now on
        time.sleep(0.3)
        assert gnss.latest() is None
    finally:
        gnss.stop()


def test_gpsd_tpv_report_is_a_fix_and_other_reports_are_not() -> None:
    fix = parse_gpsd_tpv(
        '{"class":"TPV","mode":3,"lat":34.02,"lon":-6.84,"eph":3.2,"time":"2026-11-25T08:00:00.000Z"}'
    )
    assert fix is not None
    assert (fix.lat, fix.lon, fix.accuracy_m) == (34.02, -6.84, 3.2)
    assert parse_gpsd_tpv('{"class":"TPV","mode":1}') is None
    assert parse_gpsd_tpv('{"class":"SKY"}') is None
    assert parse_gpsd_tpv("not json") is None
