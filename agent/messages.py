"""The body of each message kind, as plain JSON-able dicts.

This is the content; how it is wrapped on the wire (device id, sequence number,
signature, encryption) is ``agent.envelope``'s concern, so sealing can change
without touching what a hit says.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from agent.errors import PayloadError
from agent.reads import Hit

HIT_KIND: Final = "hit"
STATUS_KIND: Final = "status"
LEDGER_KIND: Final = "ledger"
"""Same value as ``agent.evidence.entry.MESSAGE_KIND`` (the ledger owns its entry format)."""
DISPOSITION_KIND: Final = "disposition"
COMMAND_REPLY_KIND: Final = "command_reply"
MAX_CROP_BYTES = 256 * 1024
MAX_NOTE_CHARS: Final = 500
MAX_DETAIL_CHARS: Final = 500
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

DEVICE_VERDICTS: Final = ("confirmed", "rejected")
"""What an officer can say about an alert on the device (button or remote command)."""
DISPOSITION_SOURCES: Final = ("button", "command")
COMMAND_ACTIONS: Final = ("start_recording", "stop_recording", "send_status", "disposition")
"""What HQ may ask a device to do (``agent.envelope.encode_command``)."""
COMMAND_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def hit_body(hit: Hit, model_version: str | None = None) -> dict[str, Any]:
    """What HQ is told about a hit; ``model_version`` names the recogniser that read it."""
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
    if model_version is not None:
        body["model_version"] = model_version
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
    model_version: str | None = None
    """Absent in hits of devices older than the field."""


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
    model = body.get("model_version")
    if model is not None and not isinstance(model, str):
        raise PayloadError("hit field 'model_version' of the wrong type")
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
        model_version=model[:64] if model is not None else None,
    )


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """A heartbeat as HQ keeps it: the known fields, type-checked, and what was left out."""

    fields: dict[str, Any]
    ignored: tuple[str, ...]
    """Names of unknown fields (a newer device) and of known fields of the wrong type."""

    @property
    def online(self) -> bool:
        return bool(self.fields["online"])


def status_body(**fields: object) -> dict[str, Any]:
    """A heartbeat body as a device builds it; raises PayloadError for a field HQ would drop."""
    record = parse_status_body(dict(fields))
    if record.ignored:
        raise PayloadError(f"status has fields HQ does not know: {list(record.ignored)[:5]}")
    return record.fields


def parse_status_body(body: object) -> StatusRecord:
    """Check a heartbeat body; raises PayloadError only if it is unusable.

    Tolerant where it must be: a newer device's extra fields, or a known field of
    an unexpected type, are left out (and named in ``ignored``) rather than
    losing the whole heartbeat. Only ``online`` is required.
    """
    if not isinstance(body, dict):
        raise PayloadError("status body is not an object")
    if not isinstance(body.get("online"), bool):
        raise PayloadError("status field 'online' missing or not a boolean")
    fields: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in body.items():
        kinds = STATUS_FIELDS.get(key)
        if kinds is None:
            ignored.append(str(key)[:64])
        elif value is None or _is_json_type(value, kinds):
            fields[key] = value
        else:
            ignored.append(key)
    return StatusRecord(fields, tuple(sorted(ignored)))


def _is_json_type(value: object, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool) != (bool in kinds) or not isinstance(value, kinds):
        return False
    return not isinstance(value, float) or math.isfinite(value)


# -- officer dispositions and command replies (device -> HQ, through the outbox) ---------


@dataclass(frozen=True, slots=True)
class DispositionRecord:
    """An officer's verdict on one alert, as HQ reads it back."""

    hit_seq: int
    verdict: str
    note: str
    source: str
    at: float
    officer: str


def disposition_body(
    hit_seq: int, verdict: str, note: str, source: str, *, at: float, officer: str = ""
) -> dict[str, Any]:
    """What HQ is told when the officer confirms or rejects an alert; checked like HQ does."""
    body: dict[str, Any] = {
        "hit_seq": hit_seq,
        "verdict": verdict,
        "note": note,
        "source": source,
        "at": at,
    }
    if officer:
        body["officer"] = officer
    parse_disposition_body(body)
    return body


def _number(body: dict[str, Any], key: str, what: str) -> float:
    value = body.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise PayloadError(f"{what} field {key!r} missing or not a number")
    number = float(value)
    if not math.isfinite(number):
        raise PayloadError(f"{what} field {key!r} is not finite")
    return number


def _text(body: dict[str, Any], key: str, what: str, limit: int, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise PayloadError(f"{what} field {key!r} missing or not a string")
    if len(value) > limit:
        raise PayloadError(f"{what} field {key!r} is longer than {limit} characters")
    return value


def parse_disposition_body(body: object) -> DispositionRecord:
    """Check a disposition body; raises PayloadError naming the bad field."""
    if not isinstance(body, dict):
        raise PayloadError("disposition body is not an object")
    seq = body.get("hit_seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 2**63:
        raise PayloadError("disposition field 'hit_seq' missing or not a sequence number")
    verdict = _text(body, "verdict", "disposition", 32)
    if verdict not in DEVICE_VERDICTS:
        raise PayloadError(f"disposition verdict {verdict!r} is not one of {DEVICE_VERDICTS}")
    source = _text(body, "source", "disposition", 32)
    if source not in DISPOSITION_SOURCES:
        raise PayloadError(f"disposition source {source!r} is not one of {DISPOSITION_SOURCES}")
    return DispositionRecord(
        hit_seq=seq,
        verdict=verdict,
        note=_text(body, "note", "disposition", MAX_NOTE_CHARS),
        source=source,
        at=_number(body, "at", "disposition"),
        officer=_text(body, "officer", "disposition", 64, default=""),
    )


@dataclass(frozen=True, slots=True)
class CommandReplyRecord:
    """A device's answer to one HQ command, as HQ reads it back."""

    command_id: str
    action: str
    ok: bool
    detail: str
    at: float


def command_reply_body(
    command_id: str, action: str, ok: bool, detail: str, at: float
) -> dict[str, Any]:
    """What the device answers to a verified command; checked like HQ does."""
    body: dict[str, Any] = {
        "command_id": command_id,
        "action": action,
        "ok": ok,
        "detail": detail[:MAX_DETAIL_CHARS],
        "at": at,
    }
    parse_command_reply_body(body)
    return body


def parse_command_reply_body(body: object) -> CommandReplyRecord:
    """Check a command reply body; raises PayloadError naming the bad field."""
    if not isinstance(body, dict):
        raise PayloadError("command reply body is not an object")
    command_id = _text(body, "command_id", "command reply", 64)
    if not COMMAND_ID_RE.fullmatch(command_id):
        raise PayloadError("command reply field 'command_id' is not a command id")
    ok = body.get("ok")
    if not isinstance(ok, bool):
        raise PayloadError("command reply field 'ok' missing or not a boolean")
    return CommandReplyRecord(
        command_id=command_id,
        action=_text(body, "action", "command reply", 32),
        ok=ok,
        detail=_text(body, "detail", "command reply", MAX_DETAIL_CHARS),
        at=_number(body, "at", "command reply"),
    )
