"""The duty operator's pages: hits arriving live, one hit with its map, and dispositions.

The live list is server-rendered rows: the page's script asks for the rows
stored after the newest one it shows (``/operator/hits.part?after=ID``) every
``console.poll_s`` and puts them on top, so each crop is fetched (and its
viewing logged) once per row shown, not on every poll.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.responses import RedirectResponse, Response

from hq.console import maps
from hq.console.queries import HitQueries
from hq.console.store import OPERATOR
from hq.console.web import Ctx, form_value, page

OPERATOR_VERDICTS: Final = ("confirmed", "false_read", "dispatched")
LIST_SIZE: Final = 50


def _queries(ctx: Ctx) -> HitQueries:
    queries: HitQueries = ctx.request.app.state.queries
    return queries


def _latest_verdicts(ctx: Ctx) -> dict[tuple[str, int], dict[str, Any]]:
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for row in ctx.console.db.list_dispositions():
        latest[(row["device_id"], int(row["hit_seq"]))] = row  # oldest first: last one wins
    return latest


def _rows(ctx: Ctx, after: int) -> dict[str, Any]:
    hits = _queries(ctx).hits_after(after, LIST_SIZE)
    officers = _queries(ctx).officers()
    latest = _latest_verdicts(ctx) if hits else {}
    for hit in hits:
        hit["officer"] = officers.get(hit["device_id"], "")
        hit["disposition"] = latest.get((hit["device_id"], int(hit["seq"])))
    return {"hits": hits}


@page(OPERATOR)
def hits_page(ctx: Ctx) -> Response:
    rates = ctx.console.db.false_read_rates()
    ctx.audit("view_hits", "live list")
    return ctx.render("operator.html", rates=rates, **_rows(ctx, 0))


@page(OPERATOR)
def hits_part(ctx: Ctx) -> Response:
    """Rows stored after ``?after=ID`` (the live list's poll); empty when nothing is new."""
    raw = ctx.request.query_params.get("after", "0")
    after = int(raw) if raw.isdigit() else 0
    return ctx.render("hit_rows.html", part=True, **_rows(ctx, after))


def _hit_or_404(ctx: Ctx) -> dict[str, Any] | Response:
    raw = str(ctx.request.path_params["hit_id"])
    hit = _queries(ctx).hit(int(raw)) if raw.isdigit() else None
    if hit is None:
        return ctx.render("error.html", 404, message="No such hit.")
    return hit


@page(OPERATOR)
def hit_page(ctx: Ctx) -> Response:
    hit = _hit_or_404(ctx)
    if isinstance(hit, Response):
        return hit
    hit.pop("crop_jpeg", None)
    hit["officer"] = _queries(ctx).officers().get(hit["device_id"], "")
    dispositions = ctx.console.db.list_dispositions(hit["device_id"], int(hit["seq"]))
    ctx.audit("view_hit", f"hit {hit['id']} ({hit['device_id']}/{hit['seq']})")
    return ctx.render(
        "hit.html",
        hit=hit,
        where=_where(ctx, hit),
        dispositions=dispositions,
        verdicts=OPERATOR_VERDICTS,
    )


def _where(ctx: Ctx, hit: dict[str, Any]) -> str:
    if hit["lat"] is None or hit["lon"] is None:
        return ""
    tile_url = ctx.console.config.console.tile_url
    if tile_url:
        return maps.tile_map(tile_url, hit["lat"], hit["lon"])
    others = [(lat, lon) for i, lat, lon in _queries(ctx).positions() if i != hit["id"]]
    return maps.plot((hit["lat"], hit["lon"]), others[:100])


@page(OPERATOR)
def hit_crop(ctx: Ctx) -> Response:
    """The plate crop; every fetch is a logged view."""
    hit = _hit_or_404(ctx)
    if isinstance(hit, Response):
        return hit
    ctx.audit("view_hit_crop", f"hit {hit['id']} ({hit['device_id']}/{hit['seq']})")
    return Response(bytes(hit["crop_jpeg"]), media_type="image/jpeg")


@page(OPERATOR, post=True)
def record_disposition(ctx: Ctx) -> Response:
    hit = _hit_or_404(ctx)
    if isinstance(hit, Response):
        return hit
    verdict = form_value(ctx.form, "verdict", 32)
    note = form_value(ctx.form, "note", 1000)
    target = f"hit {hit['id']} ({hit['device_id']}/{hit['seq']})"
    if verdict not in OPERATOR_VERDICTS:
        ctx.audit("disposition", target, "refused", f"unknown verdict {verdict!r}")
        return ctx.render("error.html", 400, message="Choose confirmed, false read or dispatched.")
    ctx.console.db.record_disposition(
        hit["device_id"],
        int(hit["seq"]),
        source="operator",
        verdict=verdict,
        note=note,
        actor=ctx.user,
        at=ctx.now,
    )
    ctx.audit("disposition", target, "ok", f"{verdict}: {note}")
    return RedirectResponse(f"/operator/hits/{hit['id']}", status_code=303)
