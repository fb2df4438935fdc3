"""`raqib enroll request|install` on the device and `raqib hq enrol-request` at HQ."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.config import RaqibConfig
from agent.enroll import (
    answer_kem_request,
    answer_request,
    create_kem_request,
    create_request,
    install_pack,
)


def _request(args: argparse.Namespace, config: RaqibConfig) -> int:
    request = create_request(config, args.out)
    print(f"enrolment request for {request.device_id}: {request.csr} and {request.signing_public}")
    print("take them to HQ: raqib hq enrol-request DIR --device ID --out PACK")
    return 0


def _kem_request(args: argparse.Namespace, config: RaqibConfig) -> int:
    path = create_kem_request(config, args.out)
    print(f"watchlist key request for {config.device.id}: {path} (and its signature)")
    print("take it to HQ: raqib hq enrol-watchlist-key DIR --device ID")
    return 0


def _kem_answer(args: argparse.Namespace, config: RaqibConfig) -> int:
    answer_kem_request(config, args.request, args.device)
    print(f"{args.device}: watchlist key registered; seal the next list for it and run")
    print("raqib hq watchlist-keys")
    return 0


def _install(args: argparse.Namespace, config: RaqibConfig) -> int:
    for path in install_pack(config, args.pack):
        print(f"installed {path}")
    print(f"{config.device.id} is enrolled; set mqtt.tls_* to the files under tls/ and start it")
    return 0


def _answer(args: argparse.Namespace, config: RaqibConfig) -> int:
    key = answer_request(config, args.request, args.device, args.out, args.watchlist_root)
    print(f"enrolled {args.device} (signing key {key}); pack for the device in {args.out}")
    return 0


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    hq: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    enroll = sub.add_parser("enroll", help="enrol this device with HQ", parents=parents)
    steps = enroll.add_subparsers(dest="enroll_command", required=True)
    request = steps.add_parser("request", help="step 1: keys + CSR", parents=parents)
    request.add_argument("--out", type=Path, required=True, help="folder for the public request")
    request.set_defaults(handler=_request)
    kem = steps.add_parser(
        "watchlist-key", help="migrate: request for the watchlist key only", parents=parents
    )
    kem.add_argument("--out", type=Path, required=True, help="folder for the public request")
    kem.set_defaults(handler=_kem_request)
    install = steps.add_parser("install", help="step 3: install HQ's pack", parents=parents)
    install.add_argument("pack", type=Path, help="folder written by `raqib hq enrol-request`")
    install.set_defaults(handler=_install)

    answer = hq.add_parser(
        "enrol-request", help="step 2: certify a device's request", parents=parents
    )
    answer.add_argument("request", type=Path, help="folder written by `raqib enroll request`")
    answer.add_argument("--device", required=True, help="the device id the request is for")
    answer.add_argument("--out", type=Path, required=True, help="folder for the device's pack")
    answer.add_argument("--watchlist-root", type=Path, help="the fleet's signed root document")
    answer.set_defaults(handler=_answer)
    kem_answer = hq.add_parser(
        "enrol-watchlist-key", help="register an enrolled device's watchlist key", parents=parents
    )
    kem_answer.add_argument("request", type=Path, help="raqib enroll watchlist-key output")
    kem_answer.add_argument("--device", required=True, help="the device id")
    kem_answer.set_defaults(handler=_kem_answer)
