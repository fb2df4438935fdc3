"""``raqib hq watchlist-recipients`` and ``raqib hq watchlist-keys``: HQ's confidential-list chores.

- ``watchlist-recipients --out FILE``: the X25519 keys of every enrolled, unrevoked
  device, for ``raqib watchlist seal``;
- ``watchlist-keys``: publish each such device's sealed cache key (retained, on its
  own ``watchlist-key`` topic) and empty the retained key of every revoked device.
  Run it after enrolling or revoking devices.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from agent.config import RaqibConfig
from agent.fsutil import atomic_write
from agent.pki import HqKeys
from agent.watchlist.publish import BrokerTarget
from hq.watchlist_keys import WatchlistKeyRegistry, publish_key_messages, raw_public


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _recipients(args: argparse.Namespace, config: RaqibConfig) -> int:
    with WatchlistKeyRegistry(config.hq.database_url) as registry:
        devices = {d.device_id: raw_public(d.kem_public).hex() for d in registry.devices()}
        revoked = [d.device_id for d in registry.devices() if d.revoked]
    for device_id in revoked:
        del devices[device_id]
    atomic_write(args.out, json.dumps({"devices": devices}, indent=1).encode("utf-8"), 0o644)
    _out(f"{len(devices)} recipient(s) ({len(revoked)} revoked left out) in {args.out}")
    return 0


def _keys(args: argparse.Namespace, config: RaqibConfig) -> int:
    mqtt = config.mqtt
    target = BrokerTarget(
        mqtt.host, mqtt.port, mqtt.tls_ca, mqtt.tls_cert, mqtt.tls_key, "raqib-watchlist-keys"
    )
    signing = HqKeys.load(config.hq.keys_dir).signing
    with WatchlistKeyRegistry(config.hq.database_url) as registry:
        sent, withdrawn = publish_key_messages(
            registry, signing, target, mqtt.topic_prefix, time.time()
        )
    _out(f"watchlist keys: {sent} sent, {withdrawn} withdrawn (revoked devices)")
    return 0


def register(
    hq: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    p = hq.add_parser(
        "watchlist-recipients", help="device keys a sealed list is made for", parents=parents
    )
    p.add_argument("--out", type=Path, required=True, help="JSON file for raqib watchlist seal")
    p.set_defaults(handler=_recipients)
    p = hq.add_parser(
        "watchlist-keys", help="send devices their list keys, withdraw revoked", parents=parents
    )
    p.set_defaults(handler=_keys)
