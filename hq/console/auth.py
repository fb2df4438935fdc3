"""Log in, log out, choose a language: the pages that come before (or beside) a role.

The login form carries its own CSRF token (a random cookie echoed in the form),
since there is no session yet to hold one. Every attempt, good or bad, is in the
audit log with the address it came from.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hq.console import i18n
from hq.console.security import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    client_address,
    new_token,
    same_origin,
    same_token,
)
from hq.console.store import Actor, LoginResult
from hq.console.web import HOME, Console, Ctx, form_value, language_of, page, render


def _set_cookie(response: Response, console: Console, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=console.config.console.secure_cookies,
        httponly=True,
        samesite="strict",
    )


def _safe_next(target: str, fallback: str) -> str:
    """Only a path on this console (never ``//host`` or a full URL) is a place to go back to."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return fallback


async def login_page(request: Request) -> Response:
    console: Console = request.app.state.console
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
    response = render(
        request,
        console,
        "login.html",
        None,
        login_csrf=token,
        next=request.query_params.get("next", ""),
    )
    _set_cookie(response, console, LOGIN_CSRF_COOKIE, token, 3600)
    return response


async def _log(console: Console, actor: Actor, target: str, outcome: str, detail: str = "") -> None:
    record = console.store.audit.record
    now = console.clock()
    await run_in_threadpool(lambda: record(actor, "login", target, outcome, now, detail=detail))


async def login_submit(request: Request) -> Response:
    console: Console = request.app.state.console
    async with request.form(max_files=0, max_fields=8) as form:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
    address = client_address(request)
    username = form_value(fields, "username", 64)
    csrf_ok = same_origin(request) and same_token(
        fields.get(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    )
    actor = Actor(username or "-", "-", address)
    if not csrf_ok:
        await _log(console, actor, username, "refused", "CSRF")
        return render(
            request, console, "login.html", None, 403, error="csrf", login_csrf=new_token()
        )
    result: LoginResult = await run_in_threadpool(
        console.store.login, username, fields.get("password", "")[:1024], address, console.clock()
    )
    if result.session is None:
        await _log(console, actor, username, "failed", result.reason)
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
        status = 429 if result.reason == "locked" else 401
        return render(
            request, console, "login.html", None, status, error=result.reason, login_csrf=token
        )
    session = result.session
    await _log(console, Actor(session.user.username, session.user.role, address), username, "ok")
    target = _safe_next(fields.get("next", ""), HOME[session.user.role])
    response = RedirectResponse(target, status_code=303)
    lifetime = max(1, int(session.expires_at - console.clock()))
    _set_cookie(response, console, SESSION_COOKIE, session.token, lifetime)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@page("operator", "fleet_admin", "auditor", post=True)
def logout(ctx: Ctx) -> Response:
    ctx.console.store.logout(ctx.session.token)
    ctx.audit("logout", ctx.user)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@page("operator", "fleet_admin", "auditor", post=True)
def choose_language(ctx: Ctx) -> Response:
    lang = form_value(ctx.form, "lang", 8)
    if lang not in i18n.LANGUAGE_NAMES:
        return ctx.render("error.html", 400, message="Unknown language.")
    ctx.console.store.set_language(ctx.user, lang)
    ctx.audit("set_language", lang)
    back = _safe_next(form_value(ctx.form, "back", 300), HOME[ctx.session.user.role])
    return RedirectResponse(back, status_code=303)


async def login_language(request: Request) -> Response:
    """The login page's language links (a cookie; nothing changes on the server)."""
    console: Console = request.app.state.console
    lang = request.query_params.get("lang", "")
    if lang not in i18n.LANGUAGE_NAMES:
        lang = language_of(request)
    response = RedirectResponse("/login", status_code=303)
    _set_cookie(response, console, "raqib_lang", lang, 365 * 86400)
    return response


@page("operator", "fleet_admin", "auditor")
def home(ctx: Ctx) -> Response:
    return RedirectResponse(HOME[ctx.session.user.role], status_code=303)
