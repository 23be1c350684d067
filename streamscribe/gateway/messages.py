"""Server messages of the gateway protocol: events mapped to WebSocket/SSE messages, controls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

# event type -> (message type, the key its payload goes under; None: spread at top level)
EVENT_MESSAGES: dict[str, tuple[str, str | None]] = {
    "ready": ("READY", None),
    "partial_segment": ("PARTIAL", "segment"),
    "segment_finalized": ("FINALIZED", "segment"),
    "segment_enriched": ("ENRICHED", "enrichment"),
    "turn_updated": ("SPEAKER_TURN", "turn"),
    "semantic_update": ("SEMANTIC_UPDATE", "payload"),
    "analytics_snapshot": ("ANALYTICS", "analytics"),
    "error": ("ERROR", None),
    "done": ("SESSION_ENDED", "stats"),
}
# Event fields copied onto every message that mirrors an event.
_ENVELOPE = ("seq", "id", "revision", "session_id", "emitted_at", "stage", "schema_version")

# Close codes (RFC 6455 and the registered 1013).
CLOSE_NORMAL = 1000
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for one or many clients, encoded once."""

    text: str
    type: str
    seq: int | None = None
    entity_id: str | None = None
    # A partial: a newer message for the same entity id still waiting replaces it.
    coalescable: bool = False
    # Sent last: the connection is closed with this code after it.
    close_code: int | None = None
    close_reason: str = ""
    # The event's JSON as stored, for protocols that map events their own way (a
    # Deepgram-compatible endpoint reuses the feeds, queues and resume with it).
    raw: bytes = b""


def event_message(raw: bytes) -> Outgoing:
    """The server message for one event's JSON as stored in the session's stream."""
    event: dict[str, Any] = msgspec.json.decode(raw)
    event_type = str(event.get("type", ""))
    kind, key = EVENT_MESSAGES.get(event_type, ("EVENT", "payload"))
    message: dict[str, Any] = {"type": kind, "event_type": event_type}
    for name in _ENVELOPE:
        message[name] = event.get(name)
    payload = event.get("payload")
    if key is None and isinstance(payload, dict):
        message.update({k: v for k, v in payload.items() if k not in message})
    else:
        message[key or "payload"] = payload
    return Outgoing(
        text=_encoder.encode(message).decode(),
        type=kind,
        seq=int(event["seq"]),
        entity_id=str(event.get("id")),
        coalescable=event_type == "partial_segment",
        close_code=CLOSE_NORMAL if event_type == "done" else None,
        close_reason="session ended" if event_type == "done" else "",
        raw=raw,
    )


def control(
    kind: str, *, close_code: int | None = None, reason: str = "", **fields: Any
) -> Outgoing:
    """A message the gateway makes itself (not from the event stream): seq, id, revision null."""
    message = {"type": kind, "seq": None, "id": None, "revision": None, **fields}
    return Outgoing(
        text=_encoder.encode(message).decode(),
        type=kind,
        close_code=close_code,
        close_reason=reason,
    )


def error(
    code: str,
    message: str,
    *,
    recoverable: bool,
    close_code: int | None = None,
    **detail: Any,
) -> Outgoing:
    """A gateway ERROR; with `close_code` the connection closes after it."""
    return control(
        "ERROR",
        close_code=close_code,
        reason=code if close_code else "",
        code=code,
        message=message,
        recoverable=recoverable,
        stage="gateway",
        **detail,
    )
