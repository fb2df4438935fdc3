"""The fleet admin's pages: devices and their health, enrolment and revocation, remote
commands, watchlist rollout and publishing, console users.

The console never signs a watchlist: it takes a bundle already signed with the
admins' keys (``raqib watchlist sign``), checks it against the fleet's trusted
root exactly as a device would (signatures and threshold, fleet, expiry,
content hash) and only then publishes it, retained, on the fleet topic. Remote
commands are signed with HQ's signing key by ``hq.commands`` and verified by the
device; its reply comes back through the ingest.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any, Final

from starlette.responses import RedirectResponse, Response

from agent.errors import ConfigError, PayloadError, TransportError, WatchlistError
from agent.pki import HqKeys, fingerprint, load_certificate
from agent.transport.topics import DEVICE_ID_RE
from agent.watchlist.admin import load_root
from agent.watchlist.publish import BrokerTarget, publish_bundle, watchlist_topic
from agent.watchlist.sealed import Release, check_release, decode_sealed, is_sealed
from hq.console.store import FLEET_ADMIN, ROLES
from hq.console.web import Ctx, form_value, page

log = logging.getLogger(__name__)

CONSOLE_COMMANDS: Final = ("start_recording", "stop_recording", "send_status")
_sender_lock = threading.Lock()


def device_state(device: dict[str, Any], now: float, offline_after_s: float) -> str:
    """``revoked``, ``offline`` (last will, or silent too long), ``online`` or ``never_seen``."""
    if device.get("revoked"):
        return "revoked"
    last_seen = device.get("last_seen")
    if last_seen is None:
        return "never_seen"
    if device.get("online") is False or now - float(last_seen) > offline_after_s:
        return "offline"
    return "online"


def _devices(ctx: Ctx) -> list[dict[str, Any]]:
    devices = ctx.console.db.list_devices()
    limit = ctx.console.config.console.offline_after_s
    for device in devices:
        device["state"] = device_state(device, ctx.now, limit)
        device["s"] = device.get("status") or {}
    return devices


@page(FLEET_ADMIN)
def fleet_page(ctx: Ctx) -> Response:
    ctx.audit("view_fleet", "devices")
    return ctx.render("fleet.html", devices=_devices(ctx))


@page(FLEET_ADMIN)
def devices_part(ctx: Ctx) -> Response:
    return ctx.render("device_rows.html", devices=_devices(ctx))


def _device_or_404(ctx: Ctx) -> dict[str, Any] | Response:
    device_id = str(ctx.request.path_params["device_id"])
    found = [d for d in _devices(ctx) if d["device_id"] == device_id]
    if not found:
        return ctx.render("error.html", 404, message="No such device.")
    return found[0]


@page(FLEET_ADMIN)
def device_page(ctx: Ctx) -> Response:
    device = _device_or_404(ctx)
    if isinstance(device, Response):
        return device
    commands = ctx.console.db.list_commands(device["device_id"], limit=20)
    ctx.audit("view_device", device["device_id"])
    return ctx.render(
        "device.html", device=device, commands=commands, actions=CONSOLE_COMMANDS, message=""
    )


@page(FLEET_ADMIN)
def commands_part(ctx: Ctx) -> Response:
    device_id = str(ctx.request.path_params["device_id"])
    commands = ctx.console.db.list_commands(device_id, limit=20)
    return ctx.render("command_rows.html", commands=commands)


def _sender(ctx: Ctx) -> Any:
    from hq.commands import CommandSender

    state = ctx.request.app.state
    with _sender_lock:
        if getattr(state, "sender", None) is None:
            config = ctx.console.config
            keys = HqKeys.load(config.hq.keys_dir)
            state.sender = CommandSender(config.mqtt, ctx.console.db, keys, clock=ctx.console.clock)
        return state.sender


@page(FLEET_ADMIN, post=True)
def send_command(ctx: Ctx) -> Response:
    device_id = str(ctx.request.path_params["device_id"])
    action = form_value(ctx.form, "action", 32)
    if action not in CONSOLE_COMMANDS:
        ctx.audit("command", device_id, "refused", f"unknown action {action!r}")
        return ctx.render("error.html", 400, message="Unknown command.")
    try:
        command_id = _sender(ctx).send(device_id, action, {}, issued_by=ctx.user)
    except (PayloadError, TransportError, ConfigError) as exc:
        ctx.audit("command", device_id, "failed", f"{action}: {exc}")
        return ctx.render("error.html", 502, message=f"The command was not sent: {exc}")
    ctx.audit("command", device_id, "ok", f"{action} {command_id}")
    return RedirectResponse(f"/fleet/devices/{device_id}", status_code=303)


@page(FLEET_ADMIN, post=True)
def revoke(ctx: Ctx) -> Response:
    """Refuse the device's messages from now on; with its certificate, also put it on the CRL."""
    device_id = str(ctx.request.path_params["device_id"])
    if not ctx.console.db.revoke_device(device_id, ctx.now):
        ctx.audit("revoke", device_id, "failed", "not enrolled")
        return ctx.render("error.html", 404, message="No such device.")
    detail = "registry"
    cert = ctx.files.get("cert")
    crl = ctx.console.config.console.crl_path
    if cert is not None and cert[1] and crl is not None:
        try:
            _revoke_certificate(ctx.console.config.hq.keys_dir / "ca", cert[1], crl)
            detail = f"registry and certificate (CRL {crl})"
        except (ConfigError, OSError) as exc:
            ctx.audit("revoke", device_id, "partial", f"registry only: {exc}")
            return ctx.render("error.html", 400, message=f"Revoked, but not its certificate: {exc}")
    ctx.audit("revoke", device_id, "ok", detail)
    return RedirectResponse("/fleet", status_code=303)


def _revoke_certificate(ca_dir: Path, data: bytes, crl: Path) -> None:
    """Put an uploaded device certificate on the CA's CRL; ConfigError if it is not one."""
    from hq.enrol import revoke_device_tls

    with tempfile.TemporaryDirectory(prefix="raqib-revoke-") as tmp:
        path = Path(tmp) / "device.crt"
        path.write_bytes(data)
        load_certificate(path)  # ConfigError for anything but a PEM certificate
        revoke_device_tls(ca_dir, path, crl)


@page(FLEET_ADMIN, post=True)
def enrol(ctx: Ctx) -> Response:
    """Register a device's Ed25519 public key (PEM) under an id."""
    from agent.pki import ed25519_public_from_pem

    device_id = form_value(ctx.form, "device_id", 64)
    pem = (
        ctx.files.get("public_key", ("", b""))[1]
        or form_value(ctx.form, "public_pem", 4096).encode()
    )
    if not DEVICE_ID_RE.fullmatch(device_id):
        ctx.audit("enrol", device_id, "refused", "bad device id")
        return ctx.render(
            "error.html", 400, message="A device id is lower-case letters, digits and dashes."
        )
    try:
        key = ed25519_public_from_pem(pem, f"public key of {device_id}")
    except ConfigError as exc:
        ctx.audit("enrol", device_id, "refused", str(exc))
        return ctx.render("error.html", 400, message=str(exc))
    ctx.console.db.enrol_device(device_id, key, ctx.now)
    ctx.audit("enrol", device_id, "ok", f"key {fingerprint(key)}")
    return RedirectResponse("/fleet", status_code=303)


# -- watchlists ----------------------------------------------------------------------------


def rollout(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """How many (not revoked) devices run each watchlist version, newest first."""
    counts: dict[str, dict[str, Any]] = {}
    live = [d for d in devices if not d.get("revoked")]
    for device in live:
        status = device.get("status") or {}
        version = status.get("watchlist_version")
        key = "-" if version is None else str(version)
        row = counts.setdefault(key, {"version": key, "devices": 0, "stale": 0})
        row["devices"] += 1
        row["stale"] += int(bool(status.get("watchlist_stale")))
    total = max(1, len(live))
    rows = sorted(
        counts.values(), key=lambda r: (r["version"] != "-", _num(r["version"])), reverse=True
    )
    for row in rows:
        row["share"] = round(100.0 * row["devices"] / total, 1)
    return rows


def _num(version: str) -> int:
    return int(version) if version.isdigit() else -1


@page(FLEET_ADMIN)
def watchlists_page(ctx: Ctx) -> Response:
    ctx.audit("view_watchlists", "rollout")
    return _watchlists(ctx, "")


def _watchlists(ctx: Ctx, message: str, status_code: int = 200) -> Response:
    return ctx.render(
        "watchlists.html",
        status_code,
        rollout=rollout(ctx.console.db.list_devices()),
        publications=ctx.console.store.publications(),
        root_configured=ctx.console.config.console.watchlist_root is not None,
        message=message,
    )


def check_bundle(payload: bytes, root_path: Any, now: float) -> Release:
    """Check a sealed bundle's release as a device would, short of opening it.

    The console never holds a device key, so it checks what it can without one: the
    admins' threshold signatures on the release, fleet, expiry and the signed hashes of
    the recipient table and ciphertext. A clear bundle is refused, since devices accept
    only sealed lists (``raqib watchlist seal``). Raises WatchlistError.
    """
    if not is_sealed(payload):
        raise WatchlistError(
            "not a sealed bundle: devices accept only sealed lists (raqib watchlist seal)"
        )
    sealed = decode_sealed(payload)
    check_release(sealed, load_root(root_path), None, now)
    return sealed.release


@page(FLEET_ADMIN, post=True)
def publish_watchlist(ctx: Ctx) -> Response:
    config = ctx.console.config
    name, payload = ctx.files.get("bundle", ("", b""))
    if config.console.watchlist_root is None:
        ctx.audit("publish_watchlist", name, "refused", "no console.watchlist_root")
        return _watchlists(ctx, "no_root", 400)
    try:
        meta = check_bundle(payload, config.console.watchlist_root, ctx.now)
    except (WatchlistError, ConfigError) as exc:
        ctx.audit("publish_watchlist", name, "refused", str(exc))
        return _watchlists(ctx, f"refused: {exc}", 400)
    target = BrokerTarget(
        host=config.mqtt.host,
        port=config.mqtt.port,
        tls_ca=config.mqtt.tls_ca,
        tls_cert=config.mqtt.tls_cert,
        tls_key=config.mqtt.tls_key,
        client_id="hq-console-watchlist",
    )
    try:
        publish_bundle(payload, watchlist_topic(config.mqtt.topic_prefix), target, timeout_s=15)
    except TransportError as exc:
        ctx.audit("publish_watchlist", f"v{meta.version}", "failed", str(exc))
        return _watchlists(ctx, f"not published: {exc}", 502)
    ctx.console.store.note_publication(
        {
            "version": meta.version,
            "kind": meta.kind,
            "fleet": meta.fleet,
            "entries": meta.recipient_count,  # the entries themselves are sealed
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "expires_at": float(meta.expires_at),
            "published_by": ctx.user,
            "published_at": ctx.now,
        }
    )
    ctx.audit("publish_watchlist", f"v{meta.version}", "ok", f"{meta.kind}, {len(payload)} bytes")
    return _watchlists(ctx, f"published v{meta.version}")


# -- users ---------------------------------------------------------------------------------


@page(FLEET_ADMIN)
def users_page(ctx: Ctx) -> Response:
    ctx.audit("view_users", "users")
    return ctx.render(
        "users.html", users=ctx.console.store.list_users(), all_roles=ROLES, message=""
    )


@page(FLEET_ADMIN, post=True)
def create_user(ctx: Ctx) -> Response:
    name = form_value(ctx.form, "username", 64)
    role = form_value(ctx.form, "role", 16)
    try:
        ctx.console.store.create_user(name, ctx.form.get("password", "")[:1024], role, ctx.now)
    except ConfigError as exc:
        ctx.audit("create_user", name, "refused", str(exc))
        return ctx.render(
            "users.html",
            400,
            users=ctx.console.store.list_users(),
            all_roles=ROLES,
            message=str(exc),
        )
    ctx.audit("create_user", name, "ok", role)
    return RedirectResponse("/fleet/users", status_code=303)


@page(FLEET_ADMIN, post=True)
def unlock_user(ctx: Ctx) -> Response:
    name = str(ctx.request.path_params["username"])
    found = ctx.console.store.unlock(name)
    ctx.audit("unlock_user", name, "ok" if found else "failed")
    return RedirectResponse("/fleet/users", status_code=303)
