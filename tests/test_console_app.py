"""The console's pieces without a browser: translations, maps, systemd readiness, device state,
watchlist rollout and the bundle check before publishing."""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import pytest
from console_kit import ConsoleServer, console_config
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.config import load_config
from agent.errors import WatchlistError
from agent.watchlist.provision import ROOT_FILE, FleetSigner
from hq.console import i18n, maps
from hq.console.fleet import check_bundle, device_state, rollout

TEMPLATES = Path(i18n.__file__).resolve().parent / "templates"
LITERAL = re.compile(r"""_\((?:"([^"]+)"|'([^']+)')\)""")


def template_strings() -> set[str]:
    found: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        for double, single in LITERAL.findall(path.read_text(encoding="utf-8")):
            found.add(double or single)
    return found


@pytest.mark.parametrize("lang", ["fr", "ar"])
def test_every_template_string_is_translated(lang: str) -> None:
    strings = template_strings()
    assert len(strings) > 100
    missing = sorted(s for s in strings if s not in i18n.CATALOG[lang])
    assert missing == []


def test_arabic_is_right_to_left_and_unknown_text_falls_back_to_english() -> None:
    assert i18n.direction("ar") == "rtl" and i18n.direction("fr") == "ltr"
    assert i18n.translator("ar")("Live hits") == "التنبيهات المباشرة"
    assert i18n.translator("fr")("Live hits") == "Alertes en direct"
    assert i18n.translator("ar")("a sentence nobody translated") == "a sentence nobody translated"
    assert i18n.translator("en")("false_read") == "false read"


def test_ago_speaks_each_language() -> None:
    assert i18n.ago(100.0, "en", now=190.0) == "1 min ago"
    assert i18n.ago(100.0, "fr", now=100.0 + 7200) == "il y a 2 h"
    assert i18n.ago(100.0, "ar", now=105.0) == "منذ 5 ث"
    assert i18n.ago(None, "en") == "-"


def test_tile_math_puts_casablanca_in_its_slippy_map_tile() -> None:
    x, y = maps.tile_xy(33.5731, -7.5898, 16)
    assert (int(x), int(y)) == (31386, 26273)


def test_tile_map_uses_the_configured_server_and_escapes_it() -> None:
    svg = maps.tile_map("https://tiles.hq.example/{z}/{x}/{y}.png?a=1&b=2", 33.5731, -7.5898)
    assert svg.count("<image ") == 9
    assert 'href="https://tiles.hq.example/16/31386/26273.png?a=1&amp;b=2"' in svg
    assert "<script" not in svg


def test_plot_without_tiles_draws_the_hit_among_the_others() -> None:
    svg = maps.plot((33.57, -7.59), [(33.58, -7.60), (33.56, -7.58)])
    assert svg.count("<circle") == 3
    assert 'fill="#d62828"' in svg  # the hit itself
    single = maps.plot((33.57, -7.59), [])
    cx, cy = (float(v) for v in re.search(r'cx="([\d.]+)" cy="([\d.]+)" r="8"', single).groups())
    assert (cx, cy) == (maps.PLOT_W / 2, maps.PLOT_H / 2)  # a lone hit sits in the middle


def test_device_state_from_last_will_silence_and_revocation() -> None:
    now = 1000.0
    assert device_state({"last_seen": 990.0, "online": True}, now, 180) == "online"
    assert device_state({"last_seen": 990.0, "online": False}, now, 180) == "offline"
    assert device_state({"last_seen": 700.0, "online": True}, now, 180) == "offline"
    assert device_state({"last_seen": None}, now, 180) == "never_seen"
    assert device_state({"last_seen": 990.0, "revoked": True}, now, 180) == "revoked"


def test_rollout_counts_devices_per_watchlist_version_newest_first() -> None:
    devices = [
        {"status": {"watchlist_version": 7}},
        {"status": {"watchlist_version": 9, "watchlist_stale": False}},
        {"status": {"watchlist_version": 9}},
        {"status": {"watchlist_version": 7, "watchlist_stale": True}},
        {"status": None},
        {"status": {"watchlist_version": 9}, "revoked": True},
    ]
    rows = rollout(devices)
    assert [(r["version"], r["devices"], r["stale"], r["share"]) for r in rows] == [
        ("9", 2, 0, 40.0),
        ("7", 2, 1, 40.0),
        ("-", 1, 0, 20.0),
    ]


def test_a_bundle_is_published_only_if_it_verifies_against_the_fleet_root(
    tmp_path: Path,
) -> None:
    now = time.time()
    csv = tmp_path / "list.csv"
    csv.write_text("plate,reason,case_ref,priority\n12345-B-6,stolen,C-1,1\n", encoding="utf-8")
    ours = FleetSigner.load_or_create(tmp_path / "ours", "fleet-a", now)
    theirs = FleetSigner.load_or_create(tmp_path / "theirs", "fleet-a", now)
    root = ours.directory / ROOT_FILE
    fleet = [X25519PrivateKey.generate().public_key() for _ in range(3)]
    meta = check_bundle(ours.sealed_full_list(csv, 3, now, 7, fleet), root, now)
    assert (meta.version, meta.kind, meta.recipient_count) == (3, "full", 3)
    with pytest.raises(WatchlistError):  # unknown admin key
        check_bundle(theirs.sealed_full_list(csv, 4, now, 7, fleet), root, now)
    with pytest.raises(WatchlistError):  # expired
        check_bundle(ours.sealed_full_list(csv, 5, now, 7, fleet), root, now + 8 * 86400)
    with pytest.raises(WatchlistError, match="not a sealed bundle"):  # devices refuse clear lists
        check_bundle(ours.signed_full_list(csv, 6, now, 7), root, now)
    with pytest.raises(WatchlistError):
        check_bundle(b"not a bundle at all", root, now)


def test_console_tells_systemd_it_is_ready_once_it_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    try:
        with ConsoleServer(console_config(tmp_path)) as console:
            message = sock.recv(1024).decode()
            assert "READY=1" in message
            with socket.create_connection(("127.0.0.1", console.port), timeout=5):
                pass  # it does listen
        assert "STOPPING=1" in sock.recv(1024).decode()
    finally:
        sock.close()


@pytest.mark.broker
@pytest.mark.security
def test_revoking_with_the_certificate_reaches_the_broker_without_a_restart(
    tmp_path: Path,
) -> None:
    """The console writes the CRL; the broker re-reads it on SIGHUP, which is what
    systemd/raqib-hq-crl.path triggers (systemctl reload mosquitto) when the file changes."""
    from console_kit import Http, add_users
    from transport_kit import connects

    from agent.broker import LocalBroker, free_port
    from agent.config import MqttConfig, with_overrides
    from hq.console.app import open_store
    from hq.db import HqDatabase
    from hq.enrol import issue_device_tls, setup_local_tls, tls_overrides

    ca_dir = tmp_path / "hq-keys" / "ca"
    broker_tls = setup_local_tls(ca_dir, tmp_path / "broker-tls")
    device = issue_device_tls(ca_dir, "cam-lost-01", tmp_path / "device-tls")
    assert broker_tls.crl is not None
    port = free_port()
    config = with_overrides(console_config(tmp_path), console={"crl_path": str(broker_tls.crl)})
    add_users(config)
    db = HqDatabase(config.hq.database_url)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    db.enrol_device("cam-lost-01", Ed25519PrivateKey.generate().public_key(), time.time())
    db.close()
    mqtt = MqttConfig.model_validate(
        {**MqttConfig(port=port).model_dump(), **tls_overrides(device)}
    )
    identity = (device.ca, device.cert, device.key)
    with LocalBroker(port=port, workdir=tmp_path / "broker", tls=broker_tls) as broker:
        assert connects(mqtt, identity)
        with ConsoleServer(config) as console:
            http = Http(console.port)
            http.login("farid")
            reply = http.request(
                "POST",
                "/fleet/devices/cam-lost-01/revoke",
                {"csrf": http.csrf("/fleet")},
                {"cert": ("cam-lost-01.crt", device.cert.read_bytes())},
            )
            assert reply.status == 303, reply.text[-500:]
        assert broker._process is not None
        broker._process.send_signal(signal.SIGHUP)  # what the path unit's reload does
        deadline = time.monotonic() + 10
        while connects(mqtt, identity) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not connects(mqtt, identity)
    store = open_store(config)
    try:
        (entry,) = [e for e in store.audit.entries(0) if e["action"] == "revoke"]
        assert entry["outcome"] == "ok" and str(broker_tls.crl) in entry["detail"]
    finally:
        store.close()


def test_crl_units_watch_the_consoles_crl_and_feed_the_brokers() -> None:
    root = Path(__file__).resolve().parent.parent
    path_unit = (root / "systemd" / "raqib-hq-crl.path").read_text(encoding="utf-8")
    service = (root / "systemd" / "raqib-hq-crl.service").read_text(encoding="utf-8")
    example = load_config(root / "deploy" / "hq.example.toml")
    broker_conf = (root / "deploy" / "mosquitto" / "raqib.conf").read_text(encoding="utf-8")
    assert f"PathChanged={example.console.crl_path}" in path_unit
    crlfile = re.search(r"^crlfile (\S+)$", broker_conf, re.MULTILINE)
    assert crlfile is not None
    assert f"{example.console.crl_path} {crlfile.group(1)}" in service
    assert "systemctl reload mosquitto.service" in service
