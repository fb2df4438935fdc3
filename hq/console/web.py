"""The request plumbing every page shares: who is asking, may they, CSRF, rendering, audit.

A page is a plain synchronous function ``(ctx) -> Response`` wrapped by
:func:`page`, which (in the event loop) reads the session cookie, checks the
role, parses and CSRF-checks a POST, then runs the function in a worker thread,
so database work, password hashing and footage hashing never block the server.
A refused request is written to the audit log like any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from agent.config import RaqibConfig
from agent.errors import StorageError
from hq.console import i18n
from hq.console.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    client_address,
    same_origin,
    same_token,
)
from hq.console.store import AUDITOR, FLEET_ADMIN, OPERATOR, Actor, ConsoleStore, Session
from hq.db import HqDatabase

log = logging.getLogger(__name__)

HERE: Final = Path(__file__).resolve().parent
MAX_UPLOAD_BYTES: Final = 16 * 1024 * 1024
HOME: Final = {OPERATOR: "/operator", FLEET_ADMIN: "/fleet", AUDITOR: "/audit"}


@dataclass
class Console:
    """What every page needs: configuration, HQ's database, the console store, the clock."""

    config: RaqibConfig
    db: HqDatabase
    store: ConsoleStore
    clock: Callable[[], float] = time.time
    templates: Jinja2Templates = field(
        default_factory=lambda: Jinja2Templates(directory=str(HERE / "templates"))
    )

    def __post_init__(self) -> None:
        env = self.templates.env
        env.globals["roles"] = {"operator": OPERATOR, "fleet": FLEET_ADMIN, "auditor": AUDITOR}
        env.filters["utc"] = i18n.utc
        env.filters["ago"] = i18n.ago


@dataclass
class Ctx:
    """One authenticated request."""

    request: Request
    console: Console
    session: Session
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    @property
    def user(self) -> str:
        return self.session.user.username

    @property
    def actor(self) -> Actor:
        user = self.session.user
        return Actor(user.username, user.role, client_address(self.request))

    @property
    def now(self) -> float:
        return self.console.clock()

    def audit(self, action: str, target: str, outcome: str = "ok", detail: str = "") -> None:
        self.console.store.audit.record(
            self.actor, action, target, outcome, self.now, detail=detail
        )

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return render(self.request, self.console, template, self.session, status_code, **values)


def render(
    request: Request,
    console: Console,
    template: str,
    session: Session | None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    lang = session.user.language if session is not None else language_of(request)
    context = {
        "session": session,
        "user": session.user if session is not None else None,
        "csrf": session.csrf if session is not None else "",
        "lang": lang,
        "dir": i18n.direction(lang),
        "_": i18n.translator(lang),
        "languages": i18n.LANGUAGE_NAMES,
        "poll_ms": int(console.config.console.poll_s * 1000),
        **values,
    }
    return console.templates.TemplateResponse(request, template, context, status_code=status_code)


def language_of(request: Request) -> str:
    """Before login: the ``lang`` cookie, else the browser's first supported language."""
    chosen = request.cookies.get("raqib_lang", "")
    if chosen in i18n.LANGUAGE_NAMES:
        return chosen
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in i18n.LANGUAGE_NAMES:
            return code
    return "en"


Handler = Callable[[Ctx], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


def page(*roles: str, post: bool = False) -> Callable[[Handler], Endpoint]:
    """Wrap a handler: session required, role among ``roles``, CSRF checked on POST."""

    def wrap(handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            console: Console = request.app.state.console
            session = await run_in_threadpool(_session_of, console, request)
            if session is None:
                return _to_login(request)
            ctx = Ctx(request, console, session)
            if session.user.role not in roles:
                await run_in_threadpool(ctx.audit, "open_page", request.url.path, "denied")
                return ctx.render("error.html", 403, message="This page is not open to your role.")
            if post:
                refused = await _read_post(ctx)
                if refused is not None:
                    await run_in_threadpool(ctx.audit, "post", request.url.path, "refused", refused)
                    return ctx.render("error.html", 403, message=refused)
            try:
                return await run_in_threadpool(handler, ctx)
            except StorageError as exc:
                log.error("console: %s", exc)
                return ctx.render("error.html", 503, message="HQ's database is not answering.")

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap


def _session_of(console: Console, request: Request) -> Session | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    return console.store.session(token, console.clock()) if token else None


def _to_login(request: Request) -> Response:
    if request.method == "GET" and not request.url.path.endswith(".part"):
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    return Response("session ended; log in again", status_code=401)


async def _read_post(ctx: Ctx) -> str | None:
    """Parse the form; returns why the request is refused (CSRF, origin, size), or None."""
    request = ctx.request
    if not same_origin(request):
        return "The request did not come from this console (cross-site request refused)."
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
        return "The upload is larger than allowed."
    async with request.form(max_files=4, max_fields=64) as form:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read(MAX_UPLOAD_BYTES + 1)
                if len(data) > MAX_UPLOAD_BYTES:
                    return "The upload is larger than allowed."
                ctx.files[key] = (value.filename or "", data)
            else:
                ctx.form[key] = value
    token = ctx.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not same_token(token, ctx.session.csrf):
        return "The form's security token is missing or wrong (CSRF check failed)."
    return None


def form_value(form: Mapping[str, str], key: str, limit: int = 200) -> str:
    return form.get(key, "").strip()[:limit]
