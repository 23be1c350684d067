"""Parse and validate untrusted producer messages into typed results or error codes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from shared.schemas import SessionConfig
from shared.settings import IngestSettings

ENCODINGS = ("pcm_s16le", "pcm_f32le", "opus")
# Bytes per sample of each PCM encoding (Opus packets have no fixed length).
SAMPLE_WIDTH = {"pcm_s16le": 2, "pcm_f32le": 4}
# Opus without a multistream mapping (no extradata on the wire) is mono or stereo only.
OPUS_MAX_CHANNELS = 2
# A `start` config is a few hundred bytes; anything this large is not a config.
MAX_CONFIG_BYTES = 64 * 1024
_SEQ = re.compile(rb"^[0-9]{1,18}$")
# None means "detect"; otherwise a short code such as "en", "yue", "en-US" or "auto".
_LANGUAGE = re.compile(r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$")
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
class Rejected:
    """A message (or frame) that cannot be used: an error code for the `error` event.

    `message_type` is the producer's `type` when it was a known one, so a rejected
    `start` that arrives after a valid one is still recognised as a duplicate start.
    """

    code: str
    message: str
    message_type: str | None = None
    detail: dict[str, object] = field(default_factory=dict)


Message = Start | Media | Stop | Rejected


def parse_message(fields: Mapping[bytes, bytes], limits: IngestSettings) -> Message:
    """One inbox entry's flat fields -> Start | Media | Stop, or Rejected with its code."""
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
    shown = kind[:32].decode("utf-8", "replace") if kind is not None else None
    return Rejected(
        "malformed_message",
        "message type must be start, media or stop",
        detail={"type": shown},
    )


def parse_config(raw: bytes, limits: IngestSettings) -> Start | Rejected:
    """Decode and check a `start` config against the ingest limits."""

    def invalid(message: str, **detail: object) -> Rejected:
        return Rejected("invalid_config", message, "start", dict(detail))

    if len(raw) > MAX_CONFIG_BYTES:
        return invalid("config is too large", size=len(raw), max=MAX_CONFIG_BYTES)
    try:
        config = _config_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        return invalid(f"config is not a valid SessionConfig: {exc}")
    if config.encoding not in ENCODINGS:
        return Rejected(
            "unsupported_encoding",
            f"encoding {config.encoding[:64]!r} is not supported",
            "start",
            {"encoding": config.encoding[:64], "supported": list(ENCODINGS)},
        )
    if not limits.min_sample_rate <= config.sample_rate <= limits.max_sample_rate:
        return invalid(
            "sample_rate out of range",
            field="sample_rate",
            value=config.sample_rate,
            min=limits.min_sample_rate,
            max=limits.max_sample_rate,
        )
    max_channels = limits.max_channels
    if config.encoding == "opus":
        max_channels = min(max_channels, OPUS_MAX_CHANNELS)
    if not 1 <= config.channels <= max_channels:
        return invalid(
            "channels out of range",
            field="channels",
            value=config.channels,
            min=1,
            max=max_channels,
        )
    if config.language is not None and not _LANGUAGE.match(config.language):
        return invalid("language is not a language code", field="language")
    return Start(config)


def _parse_media(fields: Mapping[bytes, bytes]) -> Media | Rejected:
    raw_seq = fields.get(b"seq")
    if raw_seq is None or not _SEQ.match(raw_seq) or int(raw_seq) < 1:
        shown = raw_seq[:32].decode("utf-8", "replace") if raw_seq is not None else None
        return Rejected(
            "malformed_message",
            "media seq must be an ASCII integer >= 1",
            "media",
            {"seq": shown},
        )
    data = fields.get(b"data")
    if data is None:
        return Rejected(
            "malformed_message", "media has no data field", "media", {"seq": int(raw_seq)}
        )
    return Media(int(raw_seq), data)


def check_frame(data: bytes, config: SessionConfig, limits: IngestSettings) -> Rejected | None:
    """Size and length checks of one frame's bytes before it is buffered or decoded."""
    if len(data) > limits.max_frame_bytes:
        return Rejected(
            "frame_too_large",
            "media frame exceeds max_frame_bytes",
            "media",
            {"size": len(data), "max": limits.max_frame_bytes},
        )
    width = SAMPLE_WIDTH.get(config.encoding)
    if width is not None and len(data) % (width * config.channels):
        return Rejected(
            "bad_frame_length",
            f"frame length is not a multiple of {width * config.channels} bytes",
            "media",
            {"size": len(data), "multiple_of": width * config.channels},
        )
    if config.encoding == "opus" and not data:
        # An empty packet would put the decoder into draining mode for good.
        return Rejected("decode_failed", "empty Opus packet", "media", {"size": 0})
    return None
