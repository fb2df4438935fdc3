"""The console's composition root: one Starlette application, its routes and its middleware.

Start-up, in order: HQ's database (the ingest's tables), the console's own
tables (users, sessions, audit log), the read-only hit queries, then the routes
by role. ``create_app`` takes the configuration and a clock, so tests run the
real application on a real database with time under their control.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agent.config import RaqibConfig
from hq.console import auth, evidence, fleet, operator
from hq.console.queries import HitQueries
from hq.console.security import SecurityHeaders
from hq.console.store import ConsoleStore
from hq.console.web import HERE, Console
from hq.db import HqDatabase


def open_store(config: RaqibConfig) -> ConsoleStore:
    """The console's users, sessions and audit log on HQ's database."""
    from argon2 import PasswordHasher

    settings = config.console
    return ConsoleStore(
        config.hq.database_url,
        session_lifetime_s=settings.session_lifetime_s,
        idle_timeout_s=settings.idle_timeout_s,
        lockout_failures=settings.lockout_failures,
        lockout_s=settings.lockout_s,
        hasher=PasswordHasher(
            time_cost=settings.kdf_time_cost,
            memory_cost=settings.kdf_memory_kib,
            parallelism=settings.kdf_parallelism,
        ),
    )


def routes() -> list[Route | Mount]:
    get, post = ["GET"], ["POST"]
    return [
        Route("/", auth.home, methods=get),
        Route("/login", auth.login_page, methods=get),
        Route("/login", auth.login_submit, methods=post),
        Route("/login/language", auth.login_language, methods=get),
        Route("/logout", auth.logout, methods=post),
        Route("/language", auth.choose_language, methods=post),
        Route("/operator", operator.hits_page, methods=get),
        Route("/operator/hits.part", operator.hits_part, methods=get),
        Route("/operator/hits/{hit_id}", operator.hit_page, methods=get),
        Route("/operator/hits/{hit_id}/crop.jpg", operator.hit_crop, methods=get),
        Route("/operator/hits/{hit_id}/disposition", operator.record_disposition, methods=post),
        Route("/fleet", fleet.fleet_page, methods=get),
        Route("/fleet/devices.part", fleet.devices_part, methods=get),
        Route("/fleet/enrol", fleet.enrol, methods=post),
        Route("/fleet/devices/{device_id}", fleet.device_page, methods=get),
        Route("/fleet/devices/{device_id}/commands.part", fleet.commands_part, methods=get),
        Route("/fleet/devices/{device_id}/command", fleet.send_command, methods=post),
        Route("/fleet/devices/{device_id}/revoke", fleet.revoke, methods=post),
        Route("/fleet/watchlists", fleet.watchlists_page, methods=get),
        Route("/fleet/watchlists", fleet.publish_watchlist, methods=post),
        Route("/fleet/users", fleet.users_page, methods=get),
        Route("/fleet/users", fleet.create_user, methods=post),
        Route("/fleet/users/{username}/unlock", fleet.unlock_user, methods=post),
        Route("/audit", evidence.audit_home, methods=get),
        Route("/audit/devices/{device_id}", evidence.ledger_page, methods=get),
        Route("/audit/devices/{device_id}/report.html", evidence.report_html, methods=get),
        Route("/audit/devices/{device_id}/report.pdf", evidence.report_pdf, methods=get),
        Route("/audit/devices/{device_id}/segments/{name}", evidence.export_segment, methods=get),
        Route("/audit/log", evidence.audit_log_page, methods=get),
        Route("/audit/log.csv", evidence.audit_log_csv, methods=get),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]


def create_app(config: RaqibConfig, *, clock: Callable[[], float] = time.time) -> Starlette:
    """The console application; its database connections close when the server stops."""
    db = HqDatabase(config.hq.database_url)
    store = open_store(config)
    queries = HitQueries(config.hq.database_url)
    console = Console(config, db, store, clock)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            sender = getattr(app.state, "sender", None)
            if sender is not None:
                sender.close()
            queries.close()
            store.close()
            db.close()

    settings = config.console
    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(
                SecurityHeaders,
                tile_url=settings.tile_url,
                hsts=settings.tls_cert is not None,
            )
        ],
        lifespan=lifespan,
    )
    app.state.console = console
    app.state.queries = queries
    app.state.sender = None
    return app
