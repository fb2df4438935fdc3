"""The `raqib` command: run the agent, the demo, benchmarks and the HQ services."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agent import __version__, enroll_cli
from agent.config import RaqibConfig, load_config
from agent.errors import RaqibError
from agent.logs import setup_logging
from agent.reader import cli as reader_cli
from agent.watchlist import cli as watchlist_cli
from hq import cli as hq_cli
from hq import evidence_cli
from hq.console import cli as console_cli

log = logging.getLogger("raqib")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def _cmd_run(args: argparse.Namespace, config: RaqibConfig) -> int:
    from agent.daemon import Agent

    agent = Agent(config)
    agent.install_signal_handlers()
    agent.start()
    try:
        agent.run(until_end=args.until_end)
    finally:
        agent.shutdown()
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, config: RaqibConfig) -> int:
    from agent.demo import run_demo

    result = run_demo(config, args.workdir, console=args.console)
    if not args.console:  # with --console the summary came before the console started
        print(result.summary(), flush=True)
    return EXIT_OK if result.lost == 0 and result.sent > 0 else EXIT_ERROR


def _cmd_bench(args: argparse.Namespace, config: RaqibConfig) -> int:
    from agent.bench import SECTIONS, machine_description, run_bench

    if args.section and args.section not in SECTIONS and args.section != "fleet":
        print(
            f"unknown bench section {args.section!r}; choose from {', '.join(SECTIONS)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.section == "fleet":
        from hq.fleet.bench import FleetOptions, run_fleet_bench
        from hq.fleet.devices import Mix

        mix = Mix(compression=args.compression)
        options = FleetOptions(
            args.devices,
            args.duration,
            mix=mix,
            workers=args.workers,
            device_state=args.device_state,
        )
        figures = run_fleet_bench(options)
    else:
        figures = run_bench(config, args.section)
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"machine: {machine_description()}")
        for name, value in figures.items():
            print(f"{name:>24}: {value}")
    return EXIT_OK


STATUS_STALE_S = 30.0


def _cmd_status(args: argparse.Namespace, config: RaqibConfig) -> int:
    from agent.metrics import read_status

    status = read_status(Path(config.device.state_dir))
    if status is None:
        print(
            f"raqib: no status in {config.device.state_dir}: is the agent running?", file=sys.stderr
        )
        return EXIT_ERROR
    written = status.pop("written_at", 0.0)
    age = time.time() - float(written) if isinstance(written, int | float) else float("inf")
    status["status_age_s"] = round(age, 1)
    status["agent_running"] = age < STATUS_STALE_S
    if args.json:
        print(json.dumps(status))
    else:
        for name, value in status.items():
            print(f"{name:>20}: {value}")
    return EXIT_OK if status["agent_running"] else EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML config file")
    common.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=argparse.SUPPRESS,
        help="override logging.format",
    )
    # No set_defaults for these: ``parents`` shares the action objects with every
    # sub-command, so a default set here would make each sub-parser overwrite a
    # value given before the command (`raqib --config F run`) with it.
    parser = argparse.ArgumentParser(prog="raqib", description=__doc__, parents=[common])
    parser.add_argument("--version", action="version", version=f"raqib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser

    def sub_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        return add(name, help=help_text, parents=[common])

    run = sub_parser("run", "run the device agent")
    run.add_argument("--until-end", action="store_true", help="exit when a file source ends")
    run.set_defaults(handler=_cmd_run)

    demo = sub_parser("demo", "broker + HQ ingest + agent on the sample clip")
    demo.add_argument("--workdir", type=Path, help="keep all demo state here (default: temp dir)")
    demo.add_argument(
        "--console",
        action="store_true",
        help="after the clip, keep broker and ingest running with the HQ web console (Ctrl-C)",
    )
    demo.set_defaults(handler=_cmd_demo)

    status = sub_parser("status", "local health of the agent on this device")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(handler=_cmd_status)

    bench = sub_parser("bench", "measure speed; prints figures")
    bench.add_argument("section", nargs="?", help="one section (default: all)")
    bench.add_argument("--json", action="store_true", help="one JSON object of figures")
    fleet = bench.add_argument_group("fleet (raqib bench fleet; needs the hq extra)")
    fleet.add_argument("--devices", type=int, default=1000, help="simulated cameras")
    fleet.add_argument("--duration", type=float, default=60.0, help="busy window, seconds")
    fleet.add_argument("--compression", type=float, default=1.0, help="time runs this much faster")
    fleet.add_argument("--workers", type=int, default=2, help="HQ ingest worker processes")
    fleet.add_argument(
        "--device-state",
        type=Path,
        default=None,
        help="folder for the simulated cameras' keys, outboxes and list caches "
        "(default: the temporary folder; /dev/shm takes their shared disk out)",
    )
    bench.set_defaults(handler=_cmd_bench)

    evidence_cli.register(sub, [common])  # upload, verify, export
    reader_cli.register(sub, [common])  # read, eval
    watchlist_cli.register(sub, [common])  # keygen, root, build, sign, diff, publish, show, verify

    hq = hq_cli.register(sub, [common])  # hq ingest/hits/devices/broker-acl/keygen/enrol/revoke
    enroll_cli.register(sub, hq, [common])  # enroll request/install, hq enrol-request
    console_cli.register(hq, [common])  # hq console, hq create-user, hq create-admin
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # `raqib --config F run` and `raqib run --config F` both work (the later one wins).
    args.config = getattr(args, "config", None)
    args.log_format = getattr(args, "log_format", None)
    try:
        config = load_config(args.config)
    except RaqibError as exc:
        print(f"raqib: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(config.logging.level, args.log_format or config.logging.format)
    if getattr(args, "workers", 0) is None:
        args.workers = config.hq.workers
    handler: Callable[[argparse.Namespace, RaqibConfig], int] = args.handler
    try:
        return handler(args, config)
    except RaqibError as exc:
        log.error("%s", exc)
        print(f"raqib: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
