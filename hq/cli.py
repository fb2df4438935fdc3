"""`raqib hq ...`: the headquarters commands (ingest, hits, devices, keys, enrolment).

``register`` adds them under ``raqib hq`` and returns that sub-parser group, so
that other modules (enrolment) can add their HQ steps beside them. Handlers
take the parsed arguments and the configuration and return the exit code;
heavy modules are imported inside them so ``raqib --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import RaqibConfig
from hq import watchlist_cli

if TYPE_CHECKING:
    from hq.db import HqDatabase

log = logging.getLogger("raqib.hq")

EXIT_OK = 0
EXIT_ERROR = 1


def _stop_on_signal() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _cmd_hq_ingest(args: argparse.Namespace, config: RaqibConfig) -> int:
    from hq.workers import WorkerPool, run_worker

    stop = _stop_on_signal()
    log.info("hq ingest running", extra={"workers": args.workers})
    if args.workers == 1:
        run_worker(config, 0, stop)
        return EXIT_OK
    pool = WorkerPool(config, args.workers)
    pool.start()
    pool.supervise(stop)
    return EXIT_OK


def _cmd_hq_devices(args: argparse.Namespace, config: RaqibConfig) -> int:
    from hq.db import HqDatabase

    db = HqDatabase(config.hq.database_url)
    try:
        for row in db.list_devices():
            print(json.dumps(row, default=str))
    finally:
        db.close()
    return EXIT_OK


def _cmd_hq_broker_acl(args: argparse.Namespace, config: RaqibConfig) -> int:
    from agent.broker import acl_text

    print(acl_text(config.mqtt.topic_prefix), end="")
    return EXIT_OK


def _cmd_hq_keygen(args: argparse.Namespace, config: RaqibConfig) -> int:
    from agent.pki import CertificateAuthority, HqKeys

    HqKeys.load_or_create(config.hq.keys_dir)
    CertificateAuthority.load_or_create(config.hq.keys_dir / "ca")
    print(f"HQ keys and CA in {config.hq.keys_dir}; give devices these public keys:")
    print(f"  {config.hq.keys_dir}/hq-encryption.pub, {config.hq.keys_dir}/hq-signing.pub")
    return EXIT_OK


def _cmd_hq_enrol(args: argparse.Namespace, config: RaqibConfig) -> int:
    from agent.pki import fingerprint, load_ed25519_public
    from hq.db import HqDatabase

    key = load_ed25519_public(args.public_key, "device public key")
    db = HqDatabase(config.hq.database_url)
    try:
        db.enrol_device(args.device, key, time.time())
    finally:
        db.close()
    print(f"enrolled {args.device} (key {fingerprint(key)})")
    return EXIT_OK


def _cmd_hq_revoke(args: argparse.Namespace, config: RaqibConfig) -> int:
    from hq.db import HqDatabase
    from hq.enrol import revoke_device_tls

    db = HqDatabase(config.hq.database_url)
    try:
        known = db.revoke_device(args.device, time.time())
    finally:
        db.close()
    if not known:
        print(f"raqib: device {args.device!r} is not enrolled", file=sys.stderr)
        return EXIT_ERROR
    if args.cert is not None:
        revoke_device_tls(config.hq.keys_dir / "ca", args.cert, args.crl)
        print(f"{args.device}: certificate revoked, CRL written to {args.crl}")
    print(f"revoked {args.device}: its messages are refused from now on")
    return _tell_broker(args, config)


def _tell_broker(args: argparse.Namespace, config: RaqibConfig) -> int:
    """``--broker``: kick and block the device at the running broker; SIGHUP it for the CRL."""
    from agent.errors import TransportError
    from hq.broker_control import BrokerControl, reload_broker

    try:
        if args.broker_pid_file is not None:
            reload_broker(args.broker_pid_file)
            print(f"broker reloaded (pid file {args.broker_pid_file}): the CRL applies now")
        if args.broker:
            BrokerControl(config.mqtt).block(args.device)
            print(f"broker: {args.device} disconnected and blocked")
    except TransportError as exc:
        print(f"raqib: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _cmd_hq_hits(args: argparse.Namespace, config: RaqibConfig) -> int:
    from hq.db import HqDatabase

    db = HqDatabase(config.hq.database_url)
    try:
        for row in db.list_hits(device_id=args.device, limit=args.limit):
            row.pop("crop_jpeg", None)
            print(json.dumps(row, default=str))
    finally:
        db.close()
    return EXIT_OK


def _parse_args(pairs: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` pairs; a VALUE that is JSON (``7``, ``true``) is taken as such."""
    args: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--arg {pair!r} is not KEY=VALUE")
        try:
            args[key] = json.loads(value)
        except ValueError:
            args[key] = value
    return args


def _wait_for_reply(
    db: HqDatabase, command_id: str, device: str, wait_s: float
) -> dict[str, object]:
    deadline = time.monotonic() + wait_s
    while True:
        row = next(r for r in db.list_commands(device) if r["command_id"] == command_id)
        if row["reply_ok"] is not None or time.monotonic() >= deadline:
            return row
        time.sleep(0.2)


def _cmd_hq_command(args: argparse.Namespace, config: RaqibConfig) -> int:
    import getpass

    from agent.pki import HqKeys
    from hq.commands import CommandSender
    from hq.db import HqDatabase

    try:
        command_args = _parse_args(args.arg)
    except ValueError as exc:
        print(f"raqib: {exc}", file=sys.stderr)
        return EXIT_ERROR
    keys = HqKeys.load(config.hq.keys_dir)
    db = HqDatabase(config.hq.database_url)
    try:
        with CommandSender(config.mqtt, db, keys) as sender:
            command_id = sender.send(
                args.device,
                args.action,
                command_args,
                issued_by=args.by or f"cli:{getpass.getuser()}",
                ttl_s=args.ttl,
            )
        row = _wait_for_reply(db, command_id, args.device, args.wait)
    finally:
        db.close()
    print(json.dumps(row, default=str))
    return EXIT_OK if args.wait <= 0 or row["reply_ok"] is True else EXIT_ERROR


def _cmd_hq_commands(args: argparse.Namespace, config: RaqibConfig) -> int:
    from hq.db import HqDatabase

    db = HqDatabase(config.hq.database_url)
    try:
        for row in db.list_commands(args.device, args.limit):
            print(json.dumps(row, default=str))
    finally:
        db.close()
    return EXIT_OK


def _cmd_hq_dispositions(args: argparse.Namespace, config: RaqibConfig) -> int:
    from hq.db import HqDatabase

    db = HqDatabase(config.hq.database_url)
    try:
        for row in db.list_dispositions(args.device):
            print(json.dumps(row, default=str))
    finally:
        db.close()
    return EXIT_OK


def _register_commands(
    hq: argparse._SubParsersAction[argparse.ArgumentParser],
    common: list[argparse.ArgumentParser],
) -> None:
    from agent.messages import COMMAND_ACTIONS

    command = hq.add_parser(
        "command", help="send a device an HQ-signed remote command", parents=common
    )
    command.add_argument("device", help="device id")
    command.add_argument("action", choices=COMMAND_ACTIONS)
    command.add_argument(
        "--arg", action="append", default=[], metavar="KEY=VALUE", help="argument (repeatable)"
    )
    command.add_argument("--ttl", type=float, default=60.0, help="seconds it stays valid")
    command.add_argument("--by", help="who issues it (default: cli:USER)")
    command.add_argument(
        "--wait", type=float, default=0.0, help="wait this long for the device's reply"
    )
    command.set_defaults(handler=_cmd_hq_command)
    listing = hq.add_parser(
        "commands", help="sent commands and replies, JSON lines", parents=common
    )
    listing.add_argument("--device", help="only this device")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=_cmd_hq_commands)
    dispositions = hq.add_parser(
        "dispositions", help="verdicts on hits (officers, operators), JSON lines", parents=common
    )
    dispositions.add_argument("--device", help="only this device")
    dispositions.set_defaults(handler=_cmd_hq_dispositions)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add ``raqib hq ...`` to the main parser; returns the ``hq`` sub-parsers."""
    common = parents
    hq = sub.add_parser("hq", help="headquarters services", parents=parents).add_subparsers(
        dest="hq_command", required=True
    )
    ingest = hq.add_parser("ingest", help="store hits arriving over MQTT", parents=common)
    ingest.add_argument("--workers", type=int, default=None, help="default: hq.workers")
    ingest.set_defaults(handler=_cmd_hq_ingest)
    hits = hq.add_parser("hits", help="list stored hits as JSON lines", parents=common)
    hits.add_argument("--device", help="only this device")
    hits.add_argument("--limit", type=int, default=100)
    hits.set_defaults(handler=_cmd_hq_hits)
    devices = hq.add_parser("devices", help="enrolled devices, gaps and status", parents=common)
    devices.set_defaults(handler=_cmd_hq_devices)
    acl = hq.add_parser("broker-acl", help="print the Mosquitto ACL file", parents=common)
    acl.set_defaults(handler=_cmd_hq_broker_acl)
    keygen = hq.add_parser("keygen", help="make HQ's keys and CA (once)", parents=common)
    keygen.set_defaults(handler=_cmd_hq_keygen)
    enrol = hq.add_parser("enrol-device", help="register a device's key", parents=common)
    enrol.add_argument("device", help="device id")
    enrol.add_argument("public_key", type=Path, help="the device's Ed25519 public key (PEM)")
    enrol.set_defaults(handler=_cmd_hq_enrol)
    revoke = hq.add_parser("revoke-device", help="refuse a device from now on", parents=common)
    revoke.add_argument("device", help="device id")
    revoke.add_argument("--cert", type=Path, help="also revoke this TLS certificate")
    revoke.add_argument("--crl", type=Path, default=Path("crl.pem"), help="CRL file to write")
    revoke.add_argument(
        "--broker",
        action="store_true",
        help="also kick and block it at the running broker (dynamic security plugin; "
        "[mqtt] must carry the hq-control certificate)",
    )
    revoke.add_argument(
        "--broker-pid-file", type=Path, help="SIGHUP this broker after writing the CRL"
    )
    revoke.set_defaults(handler=_cmd_hq_revoke)
    _register_commands(hq, common)
    watchlist_cli.register(hq, common)  # watchlist-recipients, watchlist-keys
    return hq
