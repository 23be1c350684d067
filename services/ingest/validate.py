"""Parse and validate untrusted producer messages into typed results or error codes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from shared import protocol
from shared.protocol import MAX_CONFIG_BYTES, MAX_SEQ, Limits, check_config, parse_seq
from shared.schemas import SessionConfig

_config_decoder = msgspec.json.Decoder(SessionConfig)


@dataclass(frozen=True, slots=True)
class Start:
    """A valid `start`: the acknowledged config (defaults filled in)."""

    config: SessionConfig


@dataclass(frozen=True, slots=True)
class Media:
    """A well-formed `media` frame (content not yet checked against the config)."""

    seq: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Stop:
    """The producer will send nothing more."""


@dataclass(frozen=True, slots=True)
class Finalize:
    """Close the open utterances now (Deepgram's `Finalize`), the session goes on."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message (or frame) that cannot be used: an error code for the `error` event.

    `message_type` is the producer's `type` when it was a known one, so a rejected
    `start` that arrives after a valid one is still recognised as a duplicate start.
    """

    code: str
    message: str
    message_type: str | None = None
    detail: dict[str, object] = field(default_factory=dict)


Message = Start | Media | Stop | Finalize | Rejected


def parse_message(fields: Mapping[bytes, bytes], limits: Limits) -> Message:
    """One inbox entry's flat fields -> Start | Media | Stop | Finalize, or Rejected."""
    kind = fields.get(b"type")
    if kind == b"start":
        raw = fields.get(b"config")
        if raw is None:
            return Rejected("invalid_config", "start has no config field", "start")
        return parse_config(raw, limits)
    if kind == b"media":
        return _parse_media(fields)
    if kind == b"stop":
        return Stop()
    if kind == b"finalize":
        return Finalize()
    shown = kind[:32].decode("utf-8", "replace") if kind is not None else None
    return Rejected(
        "malformed_message",
        "message type must be start, media, stop or finalize",
        detail={"type": shown},
    )


def parse_config(raw: bytes, limits: Limits) -> Start | Rejected:
    """Decode and check a `start` config against the protocol limits."""
    if len(raw) > MAX_CONFIG_BYTES:
        return Rejected(
            "invalid_config",
            "config is too large",
            "start",
            {"size": len(raw), "max": MAX_CONFIG_BYTES},
        )
    try:
        config = _config_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        return Rejected("invalid_config", f"config is not a valid SessionConfig: {exc}", "start")
    violation = check_config(config, limits)
    if violation is not None:
        return Rejected(violation.code, violation.message, "start", violation.detail)
    return Start(config)


def _parse_media(fields: Mapping[bytes, bytes]) -> Media | Rejected:
    raw_seq = fields.get(b"seq")
    seq = parse_seq(raw_seq)
    if seq is None:
        shown = raw_seq[:32].decode("utf-8", "replace") if raw_seq is not None else None
        return Rejected(
            "malformed_message",
            f"media seq must be an ASCII integer from 1 to {MAX_SEQ}",
            "media",
            {"seq": shown},
        )
    data = fields.get(b"data")
    if data is None:
        return Rejected("malformed_message", "media has no data field", "media", {"seq": seq})
    return Media(seq, data)


def check_frame(data: bytes, config: SessionConfig, limits: Limits) -> Rejected | None:
    """Size and length checks of one frame's bytes before it is buffered or decoded."""
    violation = protocol.check_frame(data, config, limits)
    if violation is None:
        return None
    return Rejected(violation.code, violation.message, "media", violation.detail)
