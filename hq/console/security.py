"""HTTP hardening shared by every console page: headers, cookies, CSRF and the client address.

Content Security Policy: scripts and styles only from the console's own
``/static`` files (no inline script or style, no ``eval``), images from the
console and, when configured, the map tile server; no frames, no plugins, forms
post only to the console. A response that sets its own policy (the audit report,
which carries one hashed style block) keeps it.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Final
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE: Final = "raqib_session"
LOGIN_CSRF_COOKIE: Final = "raqib_login_csrf"
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"


def tile_origin(tile_url: str) -> str:
    """``scheme://host[:port]`` of a tile URL template, or '' if none is configured."""
    if not tile_url:
        return ""
    parts = urlsplit(tile_url.replace("{", "").replace("}", ""))
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy(tile_url: str) -> str:
    images = " ".join(filter(None, ["'self'", "data:", tile_origin(tile_url)]))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; font-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


class SecurityHeaders:
    """ASGI middleware: the security headers on every response, ``no-store`` outside /static."""

    def __init__(self, app: ASGIApp, *, tile_url: str = "", hsts: bool = False) -> None:
        self.app = app
        self._headers = {
            "content-security-policy": content_security_policy(tile_url),
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "referrer-policy": "same-origin",
            "cross-origin-opener-policy": "same-origin",
            "cross-origin-resource-policy": "same-origin",
            "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
        }
        if hsts:
            self._headers["strict-transport-security"] = "max-age=31536000; includeSubDomains"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self._headers.items():
                    if name not in headers:
                        headers[name] = value
                if not static:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def same_origin(request: Request) -> bool:
    """False if the browser says the request comes from another site (Sec-Fetch-Site, Origin).

    A browser that sends neither (not a browser, or a very old one) is left to the CSRF
    token; an opaque ``Origin: null`` counts only with ``Sec-Fetch-Site: same-origin``.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return site == "same-origin"
    return urlsplit(origin).netloc == request.headers.get("host", "")


def client_address(request: Request) -> str:
    """The peer address as the server saw it (a proxy in front should pass it via uvicorn's
    ``--forwarded-allow-ips``, which rewrites this)."""
    return request.client.host if request.client is not None else "-"
