"""Producer message parsing: every malformed or out-of-range input maps to its error code."""

from __future__ import annotations

import msgspec
import pytest

from services.ingest.settings import IngestSettings
from services.ingest.validate import Media, Rejected, Start, Stop, check_frame, parse_message
from shared.schemas import SessionConfig

LIMITS = IngestSettings()


def _start(config: dict[str, object] | bytes) -> dict[bytes, bytes]:
    raw = config if isinstance(config, bytes) else msgspec.json.encode(config)
    return {b"type": b"start", b"config": raw}


def test_valid_start_fills_in_defaults() -> None:
    message = parse_message(_start({"sample_rate": 44100, "channels": 2}), LIMITS)
    assert isinstance(message, Start)
    assert message.config.sample_rate == 44100
    assert message.config.encoding == "pcm_s16le"
    assert message.config.channels_as_speakers is False


@pytest.mark.parametrize(
    ("config", "code"),
    [
        (b"{not json", "invalid_config"),
        ({"sample_rate": "fast"}, "invalid_config"),
        ({"sample_rate": 16000, "bitrate": 9}, "invalid_config"),
        ({"sample_rate": 4000}, "invalid_config"),
        ({"sample_rate": 96000}, "invalid_config"),
        ({"channels": 0}, "invalid_config"),
        ({"channels": 9}, "invalid_config"),
        ({"encoding": "opus", "sample_rate": 48000, "channels": 3}, "invalid_config"),
        ({"language": "en; DROP"}, "invalid_config"),
        (b'{"language": "' + b"x" * 70_000 + b'"}', "invalid_config"),
        # Matches the pattern, fits the 64 KiB config, and is still no language: it was
        # accepted and copied into every final (issue 14, "silent acceptance").
        ({"language": "en" + "-abcdefgh" * 6000}, "invalid_config"),
        ({"encoding": "opus", "sample_rate": 44100}, "invalid_config"),
        ({"encoding": "mp3"}, "unsupported_encoding"),
        ({"encoding": "pcm_s24le"}, "unsupported_encoding"),
    ],
)
def test_bad_config_is_rejected_with_its_code(config: dict[str, object] | bytes, code: str) -> None:
    message = parse_message(_start(config), LIMITS)
    assert isinstance(message, Rejected)
    assert (message.code, message.message_type) == (code, "start")


def test_start_without_config_is_invalid() -> None:
    message = parse_message({b"type": b"start"}, LIMITS)
    assert isinstance(message, Rejected) and message.code == "invalid_config"


def test_rate_limits_come_from_settings() -> None:
    limits = IngestSettings(min_sample_rate=16000, max_sample_rate=16000)
    assert isinstance(parse_message(_start({"sample_rate": 8000}), limits), Rejected)
    assert isinstance(parse_message(_start({"sample_rate": 16000}), limits), Start)


def test_media_and_stop_parse() -> None:
    media = parse_message({b"type": b"media", b"seq": b"12", b"data": b"\x00\x01"}, LIMITS)
    assert media == Media(12, b"\x00\x01")
    assert parse_message({b"type": b"stop"}, LIMITS) == Stop()


@pytest.mark.parametrize(
    "fields",
    [
        {b"type": b"hello"},
        {b"seq": b"1", b"data": b""},
        {b"type": b"media", b"data": b"\x00\x00"},
        {b"type": b"media", b"seq": b"abc", b"data": b"\x00\x00"},
        {b"type": b"media", b"seq": b"1.5", b"data": b"\x00\x00"},
        {b"type": b"media", b"seq": b"-3", b"data": b"\x00\x00"},
        {b"type": b"media", b"seq": b" 3", b"data": b"\x00\x00"},
        {b"type": b"media", b"seq": b"1_000", b"data": b"\x00\x00"},
        {b"type": b"media", b"seq": b"0", b"data": b"\x00\x00"},
        {b"type": b"media", b"seq": b"9" * 40, b"data": b"\x00\x00"},
        {b"type": b"media", b"seq": b"4"},
    ],
)
def test_malformed_messages(fields: dict[bytes, bytes]) -> None:
    message = parse_message(fields, LIMITS)
    assert isinstance(message, Rejected) and message.code == "malformed_message"


def test_frame_checks() -> None:
    s16 = SessionConfig(encoding="pcm_s16le", channels=1)
    f32_stereo = SessionConfig(encoding="pcm_f32le", channels=2)
    opus = SessionConfig(encoding="opus", sample_rate=48000)
    small = IngestSettings(max_frame_bytes=1000)

    def code(data: bytes, config: SessionConfig, limits: IngestSettings = LIMITS) -> str | None:
        rejected = check_frame(data, config, limits)
        return rejected.code if rejected else None

    assert code(b"\x00" * 640, s16) is None
    assert code(b"\x00" * 641, s16) == "bad_frame_length"
    assert code(b"\x00" * 1002, s16, small) == "frame_too_large"
    assert code(b"\x00" * 16, f32_stereo) is None
    assert code(b"\x00" * 12, f32_stereo) == "bad_frame_length"
    assert code(b"", opus) == "decode_failed"
    assert code(b"\x01\x02\x03", opus) is None
