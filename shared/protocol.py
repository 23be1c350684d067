"""The producer protocol contract: what a session config and a media frame may be.

One module for every wire limit, used by the producer SDK (to fail before sending),
by ingest (to reject what arrives) and by the gateway (to answer its clients). A
check returns a `ProtocolViolation` naming the `error` code ingest publishes for it
(docs/PROTOCOL.md, "Error codes"), so every side reports the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shared.schemas import AUDIO_SAMPLE_RATE, SessionConfig

# The rate every stage after ingest works at: ingest resamples everything to it.
WORKING_SAMPLE_RATE = AUDIO_SAMPLE_RATE

ENCODINGS = ("pcm_s16le", "pcm_f32le", "opus")
# Bytes per sample of each PCM encoding (Opus packets have no fixed length).
SAMPLE_WIDTH = {"pcm_s16le": 2, "pcm_f32le": 4}
# Opus decoders run only at these rates (RFC 6716, section 2) ...
OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})
# ... and without a multistream mapping (no extradata on the wire) mono or stereo only.
OPUS_MAX_CHANNELS = 2

MAX_SEQ = 10**18 - 1  # 18 decimal digits: parsed without big-integer surprises anywhere
_SEQ_TEXT = re.compile(rb"^[0-9]{1,18}$")
# None means "detect"; otherwise a short code such as "en", "yue", "en-US" or "auto".
LANGUAGE = re.compile(r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$")
MAX_LANGUAGE_CHARS = 35  # BCP 47's longest practical tag; a longer one is not a language
# A `start` config is a few hundred bytes; anything this large is not a config.
MAX_CONFIG_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Deployment-tunable bounds ingest enforces (and clients check first)."""

    max_frame_bytes: int = 1 << 20
    min_sample_rate: int = 8000
    max_sample_rate: int = 48000
    max_channels: int = 8


def limits_from(settings: object | None) -> Limits:
    """The limits a settings object configures (any object with Limits' field names,
    such as the ingest stage's settings); defaults for fields it lacks."""
    default = Limits()
    if settings is None:
        return default
    return Limits(
        **{name: getattr(settings, name, getattr(default, name)) for name in _LIMIT_FIELDS}
    )


_LIMIT_FIELDS = ("max_frame_bytes", "min_sample_rate", "max_sample_rate", "max_channels")


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """Why a config or frame is refused: the `error` code, a message, details."""

    code: str
    message: str
    detail: dict[str, object] = field(default_factory=dict)


def check_config(config: SessionConfig, limits: Limits) -> ProtocolViolation | None:
    """The first rule `config` breaks, or None when ingest accepts it."""

    def invalid(message: str, **detail: object) -> ProtocolViolation:
        return ProtocolViolation("invalid_config", message, dict(detail))

    if config.encoding not in ENCODINGS:
        return ProtocolViolation(
            "unsupported_encoding",
            f"encoding {config.encoding[:64]!r} is not one of {', '.join(ENCODINGS)}",
            {"encoding": config.encoding[:64], "supported": list(ENCODINGS)},
        )
    if not limits.min_sample_rate <= config.sample_rate <= limits.max_sample_rate:
        return invalid(
            f"sample_rate {config.sample_rate} is outside "
            f"{limits.min_sample_rate}-{limits.max_sample_rate} Hz",
            field="sample_rate",
            value=config.sample_rate,
            min=limits.min_sample_rate,
            max=limits.max_sample_rate,
        )
    if config.encoding == "opus" and config.sample_rate not in OPUS_RATES:
        return invalid(
            f"opus needs a sample_rate of {sorted(OPUS_RATES)}, got {config.sample_rate}",
            field="sample_rate",
            value=config.sample_rate,
            allowed=sorted(OPUS_RATES),
        )
    max_channels = max_channels_for(config.encoding, limits)
    if not 1 <= config.channels <= max_channels:
        return invalid(
            f"channels {config.channels} is outside 1-{max_channels} for {config.encoding}",
            field="channels",
            value=config.channels,
            min=1,
            max=max_channels,
        )
    language = config.language
    if language is not None and (
        len(language) > MAX_LANGUAGE_CHARS or not LANGUAGE.match(language)
    ):
        return invalid(f"language {language[:40]!r} is not a language code", field="language")
    return None


def max_channels_for(encoding: str, limits: Limits) -> int:
    """The channel bound of `encoding` under `limits`."""
    if encoding == "opus":
        return min(limits.max_channels, OPUS_MAX_CHANNELS)
    return limits.max_channels


def check_frame(data: bytes, config: SessionConfig, limits: Limits) -> ProtocolViolation | None:
    """Size and length rules of one frame's bytes under the session's `config`."""
    if len(data) > limits.max_frame_bytes:
        return ProtocolViolation(
            "frame_too_large",
            f"media frame of {len(data)} bytes exceeds max_frame_bytes ({limits.max_frame_bytes})",
            {"size": len(data), "max": limits.max_frame_bytes},
        )
    width = SAMPLE_WIDTH.get(config.encoding)
    if width is not None and len(data) % (width * config.channels):
        return ProtocolViolation(
            "bad_frame_length",
            f"frame length {len(data)} is not a multiple of {width * config.channels} bytes "
            f"({config.encoding}, {config.channels} channel(s))",
            {"size": len(data), "multiple_of": width * config.channels},
        )
    if not data:
        # An empty Opus packet would put the decoder into draining mode for good, and an
        # empty PCM frame carries nothing: both are refused.
        code = "decode_failed" if config.encoding == "opus" else "bad_frame_length"
        return ProtocolViolation(code, "empty media frame", {"size": 0})
    return None


def parse_seq(raw: bytes | None) -> int | None:
    """A media seq from its wire text (ASCII digits, 1..MAX_SEQ), else None."""
    if raw is None or not _SEQ_TEXT.match(raw):
        return None
    seq = int(raw)
    return seq if 1 <= seq <= MAX_SEQ else None


def valid_seq(seq: object) -> bool:
    """Whether `seq` is an int a producer may send (bools are not)."""
    return isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq <= MAX_SEQ
