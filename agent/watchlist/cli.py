"""``raqib watchlist ...``: the fleet admin's commands.

``register(subparsers)`` adds the group; every subcommand handler is
``(args: argparse.Namespace) -> int`` and is stored as ``args.watchlist_handler``;
``args.handler`` is :func:`run`, which also accepts the loaded config as a second
argument (MQTT defaults are taken from it when given).

Typical flow (two of three admins must sign)::

    raqib watchlist keygen keys/root        # offline
    raqib watchlist keygen keys/admin-a     # one per admin
    raqib watchlist root --out root-1.json --fleet rabat --root-key keys/root.pub \\
        --admin-key keys/admin-a.pub --admin-key keys/admin-b.pub \\
        --admin-key keys/admin-c.pub --threshold 2 --sign keys/root.key
    raqib watchlist build list.csv --fleet rabat --version 7 --out v7.rqwl
    raqib watchlist sign v7.rqwl --key keys/admin-a.key
    raqib watchlist sign v7.rqwl --key keys/admin-b.key
    raqib watchlist verify v7.rqwl --root root-1.json
    raqib hq watchlist-recipients --out fleet.json       # enrolled, unrevoked devices
    raqib watchlist seal v7.rqwl --recipients fleet.json --out v7.rqws
    raqib watchlist sign v7.rqws --key keys/admin-a.key  # the release: to whom it goes
    raqib watchlist sign v7.rqws --key keys/admin-b.key
    raqib watchlist publish v7.rqws --host hq-broker --port 8883 --tls-ca ca.pem ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from agent.errors import RaqibError, WatchlistError
from agent.fsutil import atomic_write
from agent.watchlist import admin
from agent.watchlist.content import parse_delta, parse_full
from agent.watchlist.errors import WatchlistRefusedError
from agent.watchlist.format import MAGIC, Root, decode_bundle
from agent.watchlist.publish import BrokerTarget, publish_bundle, watchlist_topic
from agent.watchlist.sealed import (
    MAGIC_SEALED,
    check_release,
    decode_sealed,
    is_sealed,
    seal_bundle,
    sign_sealed,
)
from agent.watchlist.verify import CurrentState, verify_root, verify_update

Handler = Callable[[argparse.Namespace], int]
DAY = 86_400


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(f"raqib watchlist: {text}\n")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise WatchlistError(f"cannot read {path}: {exc.strerror}") from exc


# -- handlers -------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    prefix: Path = args.prefix
    public = admin.generate_key(prefix.with_suffix(".key"), prefix.with_suffix(".pub"))
    _out(json.dumps({"keyid": public.keyid, "private": f"{prefix}.key", "public": f"{prefix}.pub"}))
    return 0


def cmd_root(args: argparse.Namespace) -> int:
    previous = admin.load_root(args.previous) if args.previous else None
    fleet = args.fleet or (previous.fleet if previous else None)
    if not fleet:
        _err("--fleet is required for a first root")
        return 2
    issued = int(args.issued_at if args.issued_at is not None else time.time())
    root = admin.make_root(
        fleet,
        [admin.load_public_key(p) for p in args.root_key],
        [admin.load_public_key(p) for p in args.admin_key],
        args.threshold,
        root_threshold=args.root_threshold,
        issued_at=issued,
        previous=previous,
        expires_at=issued + round(args.expires_in_days * 86_400),
    )
    for key_path in args.sign or []:
        root = admin.sign_root(root, admin.load_private_key(key_path))
    atomic_write(args.out, root.to_bytes() + b"\n")
    report: dict[str, Any] = {"root_version": root.version, "revoked": sorted(root.revoked)}
    if previous is not None:  # tell the admin now whether devices would accept it yet
        try:
            verify_root(root, previous)
            report["accepted_by_devices"] = True
        except WatchlistRefusedError as exc:
            report["accepted_by_devices"] = False
            report["missing"] = f"{exc.reason}: {exc} (add signatures with 'sign')"
    _out(json.dumps(report))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    issued = int(args.issued_at if args.issued_at is not None else time.time())
    bundle = admin.build_full(
        admin.read_csv(args.csv),
        fleet=args.fleet,
        version=args.version,
        issued_at=issued,
        expires_at=issued + int(args.expires_in_days * DAY),
        roots=tuple(admin.load_root(p) for p in args.root or []),
    )
    atomic_write(args.out, bundle)
    _out(json.dumps(_summary(bundle)))
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    data = _read(args.file)
    key = admin.load_private_key(args.key)
    if data.startswith(MAGIC_SEALED):
        signed = sign_sealed(data, key)
    elif data.startswith(MAGIC):
        signed = admin.sign_bundle(data, key)
    else:
        signed = admin.sign_root(Root.from_bytes(data), key).to_bytes() + b"\n"
    atomic_write(args.out or args.file, signed)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    delta = admin.build_delta(
        decode_bundle(_read(args.old)),
        decode_bundle(_read(args.new)),
        version=args.version,
        roots=tuple(admin.load_root(p) for p in args.root or []),
    )
    atomic_write(args.out, delta)
    _out(json.dumps(_summary(delta)))
    return 0


def cmd_seal(args: argparse.Namespace) -> int:
    """Encrypt a signed list for the devices in a recipients file (``raqib hq
    watchlist-recipients``); the release still needs the admins' signatures."""
    inner = _read(args.file)
    recipients = read_recipients(args.recipients)
    sealed = seal_bundle(inner, recipients.values())
    atomic_write(args.out, sealed)
    _out(json.dumps({**_sealed_summary(sealed), "out": str(args.out)}))
    return 0


def read_recipients(path: Path) -> dict[str, X25519PublicKey]:
    """``{"device id": "<64 hex: raw X25519 public key>"}``; raises WatchlistError."""
    try:
        obj = json.loads(_read(path))
        return {
            str(device): X25519PublicKey.from_public_bytes(bytes.fromhex(key))
            for device, key in obj["devices"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WatchlistError(f"{path} is not a recipients file: {exc}") from exc


def _sealed_summary(bundle: bytes) -> dict[str, Any]:
    decoded = decode_sealed(bundle)
    return {
        **decoded.release.to_dict(),
        "sealed": True,
        "signatures": len(decoded.signatures),
        "bytes": len(bundle),
        "recipient_table_bytes": len(decoded.recipients),
    }


def cmd_publish(args: argparse.Namespace) -> int:
    payload = _read(args.file)
    if not is_sealed(payload) and not args.clear:
        _err(
            "refusing to publish a clear list: the broker would hold every plate "
            "(raqib watchlist seal it; --clear if you really mean it)"
        )
        return 2
    if is_sealed(payload):
        decode_sealed(payload)
    else:
        decode_bundle(payload)  # never publish something that is not even a bundle
    topic = watchlist_topic(args.prefix, args.device)
    target = BrokerTarget(args.host, args.port, args.tls_ca, args.tls_cert, args.tls_key)
    publish_bundle(payload, topic, target, retain=not args.no_retain, timeout_s=args.timeout)
    _out(json.dumps({"published": topic, "bytes": len(payload), "retained": not args.no_retain}))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    data = _read(args.file)
    if is_sealed(data):
        _out(json.dumps(_sealed_summary(data), indent=2, sort_keys=True))
        return 0
    if not data.startswith(MAGIC):
        _out(json.dumps(Root.from_bytes(data).to_dict(), indent=2, sort_keys=True))
        return 0
    _out(json.dumps(_summary(data), indent=2, sort_keys=True))
    if args.entries:
        sys.stdout.write(decode_bundle(data).content.decode("utf-8"))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    root = admin.load_root(args.root)
    current = None
    if args.current:
        base = decode_bundle(_read(args.current))
        current = CurrentState(base.metadata.version, parse_full(base.content))
    now = float(args.now if args.now is not None else time.time())
    data = _read(args.file)
    if is_sealed(data):
        sealed = decode_sealed(data)
        check_release(sealed, root, current, now)  # what every device checks before opening
        _out(json.dumps({"verified": True, "release": True, **_sealed_summary(data)}))
        return 0
    update = verify_update(data, root, current, now)
    meta = update.metadata
    _out(
        json.dumps(
            {
                "verified": True,
                "version": meta.version,
                "kind": meta.kind,
                "entries": meta.entry_count,
                "signatures": len(update.signatures),
                "root_version": update.root.version,
                "expires_at": meta.expires_at,
            }
        )
    )
    return 0


def _summary(bundle: bytes) -> dict[str, Any]:
    decoded = decode_bundle(bundle)
    meta = decoded.metadata.to_dict()
    if decoded.metadata.kind == "delta":
        delta = parse_delta(decoded.content)
        removes = sum(e is None for e in delta.entries)
        meta["changes"] = {"upserts": len(delta.entries) - removes, "removes": removes}
    return {
        "signed": meta,
        "signed_by": [s.keyid for s in decoded.signatures],
        "roots": [r.version for r in decoded.roots],
        "bytes": len(bundle),
    }


# -- wiring -----------------------------------------------------------------------


def run(args: argparse.Namespace, config: object = None) -> int:
    """Run the chosen subcommand; input and transport errors are one line on stderr, exit 1."""
    if hasattr(args, "host"):
        _mqtt_defaults(args, getattr(config, "mqtt", None))
    handler: Handler = args.watchlist_handler
    try:
        return handler(args)
    except RaqibError as exc:
        reason = getattr(exc, "reason", "error")
        _err(f"{reason}: {exc}")
        return 1


def _mqtt_defaults(args: argparse.Namespace, mqtt: Any) -> None:
    """Fill broker options not given on the command line from ``mqtt`` config, else defaults."""
    defaults = {"host": "127.0.0.1", "port": 1883, "prefix": "raqib/v1"}
    names = {"host": "host", "port": "port", "prefix": "topic_prefix"}
    names |= {"tls_ca": "tls_ca", "tls_cert": "tls_cert", "tls_key": "tls_key"}
    for arg, field in names.items():
        if getattr(args, arg) is None:
            fallback = getattr(mqtt, field, None) if mqtt is not None else None
            setattr(args, arg, fallback if fallback is not None else defaults.get(arg))


def _add_mqtt(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="broker host (default: mqtt.host)")
    parser.add_argument("--port", type=int, default=None, help="broker port (default: mqtt.port)")
    parser.add_argument("--prefix", default=None, help="topic prefix (default: mqtt.topic_prefix)")
    parser.add_argument("--tls-ca", type=Path, default=None)
    parser.add_argument("--tls-cert", type=Path, default=None)
    parser.add_argument("--tls-key", type=Path, default=None)


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser] | None = None,
) -> argparse.ArgumentParser:
    """Add ``watchlist`` and its subcommands to ``subparsers``; returns the group's parser."""
    parents = parents or []
    group = subparsers.add_parser(
        "watchlist", help="sign, check and publish watchlists", parents=parents
    )
    group.set_defaults(handler=run)
    sub = group.add_subparsers(dest="watchlist_command", required=True)

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text, parents=parents)
        parser.set_defaults(watchlist_handler=handler, handler=run)
        return parser

    _add_admin_commands(add)
    _add_device_commands(add)
    return group


Adder = Callable[[str, Handler, str], argparse.ArgumentParser]


def _add_admin_commands(add: Adder) -> None:
    p = add("keygen", cmd_keygen, "new Ed25519 key pair: PREFIX.key (0600) and PREFIX.pub")
    p.add_argument("prefix", type=Path)

    p = add("root", cmd_root, "create a root document, or rotate one with --previous")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--previous", type=Path, help="the root this one replaces (rotation)")
    p.add_argument("--fleet")
    p.add_argument("--root-key", type=Path, action="append", required=True)
    p.add_argument("--root-threshold", type=int, default=1)
    p.add_argument("--admin-key", type=Path, action="append", required=True)
    p.add_argument("--threshold", type=int, default=1, help="admin signatures a list needs")
    p.add_argument("--sign", type=Path, action="append", help="root private key(s) to sign with")
    p.add_argument(
        "--expires-in-days",
        type=float,
        default=365.0,
        help="devices refuse lists under this root after it (rotate before)",
    )
    p.add_argument("--issued-at", type=int)

    p = add(
        "build",
        cmd_build,
        "unsigned full list from CSV plate,reason,case_ref,priority[,expires_at]",
    )
    p.add_argument("csv", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--fleet", required=True)
    p.add_argument("--version", type=int, required=True)
    p.add_argument("--expires-in-days", type=float, default=7.0)
    p.add_argument("--issued-at", type=int)
    p.add_argument("--root", type=Path, action="append", help="root document(s) to carry")

    p = add("sign", cmd_sign, "add your signature to a bundle or a root document")
    p.add_argument("file", type=Path)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("--out", type=Path, help="default: sign in place")

    p = add("diff", cmd_diff, "unsigned delta from one full list to a newer one")
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--version", type=int, help="default: the new list's version")
    p.add_argument("--root", type=Path, action="append", help="root document(s) to carry")


def _add_device_commands(add: Adder) -> None:
    p = add("publish", cmd_publish, "retained QoS 1 publish to the fleet or one device")
    p.add_argument("file", type=Path)
    p.add_argument("--device", help="only this device (default: the whole fleet)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the PUBACK")
    p.add_argument("--no-retain", action="store_true")
    p.add_argument("--clear", action="store_true", help="allow a clear (unsealed) bundle")
    _add_mqtt(p)

    p = add("seal", cmd_seal, "encrypt a signed list for the enrolled devices (then sign it)")
    p.add_argument("file", type=Path, help="the signed clear bundle (.rqwl)")
    p.add_argument("--recipients", type=Path, required=True, help="raqib hq watchlist-recipients")
    p.add_argument("--out", type=Path, required=True, help="the sealed bundle (.rqws)")

    p = add("show", cmd_show, "print a bundle's metadata (or a root document)")
    p.add_argument("file", type=Path)
    p.add_argument("--entries", action="store_true", help="also print the content")

    p = add("verify", cmd_verify, "verify a bundle as a device would")
    p.add_argument("file", type=Path)
    p.add_argument("--root", type=Path, required=True, help="the trusted root document")
    p.add_argument("--current", type=Path, help="the full list a delta applies to")
    p.add_argument("--now", type=float, help="reference time (default: now)")
