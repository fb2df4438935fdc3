"""`raqib hq console` and `raqib hq create-user` / `create-admin`.

A password is never an argument (it would sit in the shell history and the
process list): it is read from the terminal twice, or from standard input with
``--password-stdin`` for provisioning scripts.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from agent.config import RaqibConfig
from agent.errors import ConfigError
from hq.console.roles import LANGUAGES, ROLES

EXIT_OK = 0
EXIT_ERROR = 1


def _cmd_console(args: argparse.Namespace, config: RaqibConfig) -> int:
    from hq.console.server import serve

    serve(config)
    return EXIT_OK


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password (12 characters or more): ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first


def _cmd_create_user(args: argparse.Namespace, config: RaqibConfig) -> int:
    from hq.console.app import open_store
    from hq.console.store import SYSTEM

    role = getattr(args, "role", None) or "fleet_admin"
    password = _read_password(args)
    store = open_store(config)
    try:
        store.create_user(args.username, password, role, time.time(), args.language)
        store.audit.record(
            SYSTEM, "create_user", args.username, "ok", time.time(), detail=f"{role} (cli)"
        )
    finally:
        store.close()
    print(f"created {role} {args.username!r}")
    return EXIT_OK


def register(
    hq: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add the console commands under ``raqib hq``."""
    console = hq.add_parser(
        "console", help="serve the web console (console.host:port)", parents=parents
    )
    console.set_defaults(handler=_cmd_console)
    for name, text in (
        ("create-user", "add a console user (operator, fleet_admin or auditor)"),
        ("create-admin", "add the first console user: a fleet admin"),
    ):
        sub = hq.add_parser(name, help=text, parents=parents)
        sub.add_argument("username")
        if name == "create-user":
            sub.add_argument("--role", choices=ROLES, required=True)
        sub.add_argument("--language", choices=LANGUAGES, default="en")
        sub.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
        sub.set_defaults(handler=_cmd_create_user)
