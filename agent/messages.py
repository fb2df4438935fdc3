"""The body of each message kind, as plain JSON-able dicts.

This is the content; how it is wrapped on the wire (device id, sequence number,
signature, encryption) is ``agent.envelope``'s concern, so sealing can change
without touching what a hit says.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from agent.errors import PayloadError
from agent.reads import Hit

HIT_KIND = "hit"
STATUS_KIND = "status"
MAX_CROP_BYTES = 256 * 1024
STATUS_FIELDS: dict[str, tuple[type, ...]] = {
    "online": (bool,),
    "connected_at": (int, float),
    "battery_pct": (int, float),
    "storage_free_mb": (int, float),
    "temperature_c": (int, float),
    "watchlist_version": (int, str),
    "watchlist_stale": (bool,),
    "watchlist_last_refusal": (str,),
    "model_version": (str,),
    "queue_depth": (int,),
    "agent_version": (str,),
}
"""A heartbeat's fields and their JSON types; each may be null when the device cannot tell."""


def hit_body(hit: Hit) -> dict[str, Any]:
    """What HQ is told about a hit."""
    read, entry = hit.read, hit.match.entry
    body: dict[str, Any] = {
        "plate": read.text,
        "format": read.format,
        "confidence": round(read.confidence, 4),
        "first_seen": read.first_seen,
        "last_seen": read.last_seen,
        "n_reads": read.n_reads,
        "box": list(read.box),
        "match": hit.match.kind,
        "entry": {
            "plate": entry.plate,
            "reason": entry.reason,
            "case_ref": entry.case_ref,
            "priority": entry.priority,
        },
        "gnss": None,
        "crop_jpeg_b64": base64.b64encode(hit.crop_jpeg).decode("ascii") if hit.crop_jpeg else "",
    }
    if hit.gnss is not None:
        body["gnss"] = {
            "lat": hit.gnss.lat,
            "lon": hit.gnss.lon,
            "accuracy_m": hit.gnss.accuracy_m,
            "timestamp": hit.gnss.timestamp,
        }
    return body


@dataclass(frozen=True, slots=True)
class HitRecord:
    """A hit body as HQ reads it back, each field type-checked."""

    plate: str
    format: str
    confidence: float
    first_seen: float
    last_seen: float
    n_reads: int
    match: str
    reason: str
    case_ref: str
    priority: int
    entry_plate: str
    lat: float | None
    lon: float | None
    crop_jpeg: bytes


def _field(body: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PayloadError(f"hit field {key!r} missing or of the wrong type")
    return value


def parse_hit_body(body: object) -> HitRecord:
    """Check a decoded hit body; raises PayloadError naming the bad field."""
    if not isinstance(body, dict):
        raise PayloadError("hit body is not an object")
    entry = body.get("entry")
    if not isinstance(entry, dict):
        raise PayloadError("hit field 'entry' missing or of the wrong type")
    gnss = body.get("gnss")
    if gnss is not None and not isinstance(gnss, dict):
        raise PayloadError("hit field 'gnss' of the wrong type")
    crop_b64 = _field(body, "crop_jpeg_b64", str)
    if len(crop_b64) > MAX_CROP_BYTES * 4 // 3 + 4:
        raise PayloadError("hit crop is larger than allowed")
    try:
        crop = base64.b64decode(crop_b64, validate=True)
    except ValueError as exc:
        raise PayloadError("hit field 'crop_jpeg_b64' is not base64") from exc
    number = (int, float)
    return HitRecord(
        plate=_field(body, "plate", str),
        format=_field(body, "format", str),
        confidence=float(_field(body, "confidence", number)),
        first_seen=float(_field(body, "first_seen", number)),
        last_seen=float(_field(body, "last_seen", number)),
        n_reads=int(_field(body, "n_reads", int)),
        match=_field(body, "match", str),
        reason=_field(entry, "reason", str),
        case_ref=_field(entry, "case_ref", str),
        priority=int(_field(entry, "priority", int)),
        entry_plate=_field(entry, "plate", str),
        lat=float(_field(gnss, "lat", number)) if gnss else None,
        lon=float(_field(gnss, "lon", number)) if gnss else None,
        crop_jpeg=crop,
    )


def status_body(**fields: object) -> dict[str, Any]:
    """A heartbeat body; raises PayloadError for a field HQ would refuse."""
    return parse_status_body(dict(fields))


def parse_status_body(body: object) -> dict[str, Any]:
    """Check a heartbeat body: known fields only, each of its type or null."""
    if not isinstance(body, dict):
        raise PayloadError("status body is not an object")
    unknown = set(body) - set(STATUS_FIELDS)
    if unknown:
        raise PayloadError(f"status has unknown fields {sorted(unknown)[:5]}")
    for key, value in body.items():
        kinds = STATUS_FIELDS[key]
        if value is None:
            continue
        if isinstance(value, bool) != (bool in kinds) or not isinstance(value, kinds):
            raise PayloadError(f"status field {key!r} of the wrong type")
    if not isinstance(body.get("online"), bool):
        raise PayloadError("status field 'online' missing or not a boolean")
    return dict(body)
