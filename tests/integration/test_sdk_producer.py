"""Producer SDK against real Redis: exactly the protocol entries, validation, file pushing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest
import redis.asyncio as aioredis
import soundfile as sf

from shared import keys
from shared.protocol import Limits
from shared.schemas import Features, SessionConfig
from streamscribe.audio_file import AudioFileError
from streamscribe.producer import (
    FrameTooLarge,
    InvalidConfig,
    InvalidFrame,
    Producer,
    PushProgress,
    SessionExists,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"


async def inbox(redis: aioredis.Redis, sid: str) -> list[dict[bytes, bytes]]:
    return [fields for _id, fields in await redis.xrange(keys.inbox(sid))]


async def registered(redis: aioredis.Redis) -> list[bytes]:
    return [f[b"session_id"] for _id, f in await redis.xrange(keys.registry())]


def tone(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    data = np.stack([0.3 * np.sin(2 * np.pi * (300 + 200 * c) * t) for c in range(channels)], 1)
    sf.write(path, data, rate, subtype="PCM_16")
    pcm, _ = sf.read(path, dtype="int16", always_2d=True)
    return pcm


async def test_start_send_stop_write_exactly_the_protocol_entries(redis: aioredis.Redis) -> None:
    producer = Producer(redis)
    config = SessionConfig(sample_rate=8000, channels=2, language="en")
    sid = await producer.start("call-1", config)
    await producer.send(sid, 1, b"\x01\x00" * 4)
    await producer.send_many(sid, [(2, b"\x02\x00" * 4), (3, bytearray(b"\x03\x00" * 4))])
    await producer.stop(sid)

    assert sid == "call-1"
    assert await registered(redis) == [b"call-1"]
    entries = await inbox(redis, sid)
    assert entries[0].keys() == {b"type", b"config"} and entries[0][b"type"] == b"start"
    assert msgspec.json.decode(entries[0][b"config"], type=SessionConfig) == config
    assert entries[1:4] == [
        {b"type": b"media", b"seq": b"1", b"data": b"\x01\x00" * 4},
        {b"type": b"media", b"seq": b"2", b"data": b"\x02\x00" * 4},
        {b"type": b"media", b"seq": b"3", b"data": b"\x03\x00" * 4},
    ]
    assert entries[4:] == [{b"type": b"stop"}]


async def test_generated_ids_are_unique_and_ids_are_never_reused(redis: aioredis.Redis) -> None:
    producer = Producer(redis)
    a, b = await producer.start(), await producer.start()
    assert a != b and a.startswith("s-") and len(a) == 14
    keys.check_session_id(a)
    with pytest.raises(SessionExists):
        await producer.start(a)
    assert await registered(redis) == [a.encode(), b.encode()]


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (SessionConfig(sample_rate=4000), "sample_rate"),
        (SessionConfig(sample_rate=96000), "sample_rate"),
        (SessionConfig(encoding="mp3"), "encoding"),
        (SessionConfig(channels=0), "channels"),
        (SessionConfig(channels=9), "channels"),
        (SessionConfig(encoding="opus", sample_rate=44100), "opus"),
        (SessionConfig(encoding="opus", channels=3), "channels"),
        (SessionConfig(language="english please"), "language"),
    ],
)
async def test_invalid_configs_are_refused_before_anything_is_written(
    redis: aioredis.Redis, config: SessionConfig, match: str
) -> None:
    with pytest.raises(InvalidConfig, match=match):
        await Producer(redis).start("bad", config)
    assert await redis.exists(keys.registry(), keys.inbox("bad")) == 0


async def test_frames_are_validated_client_side(redis: aioredis.Redis) -> None:
    producer = Producer(redis, limits=Limits(max_frame_bytes=64))
    sid = await producer.start(config=SessionConfig(channels=2))
    with pytest.raises(FrameTooLarge, match="65 bytes, over the 64-byte limit"):
        await producer.send(sid, 1, b"\x00" * 65)
    with pytest.raises(InvalidFrame, match="whole number of pcm_s16le samples"):
        await producer.send(sid, 1, b"\x00" * 6)  # 1.5 stereo samples
    for bad_seq in (0, -3, True, "1"):
        with pytest.raises(InvalidFrame, match="seq"):
            await producer.send(sid, bad_seq, b"\x00" * 4)  # type: ignore[arg-type]
    with pytest.raises(InvalidFrame, match="empty"):
        await producer.send(sid, 1, b"")
    with pytest.raises(InvalidFrame):
        await producer.send_many(sid, [(1, b"\x00" * 4), (2, b"\x00" * 65)])
    assert len(await inbox(redis, sid)) == 1  # only the start: nothing invalid went out
    with pytest.raises(keys.InvalidSessionId):
        await producer.send("{x}", 1, b"\x00" * 4)


async def test_push_file_fast_sends_the_whole_file_in_order(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "tone.wav"
    pcm = tone(path, 1.01)
    seen: list[PushProgress] = []

    async def on_progress(p: PushProgress) -> None:  # async callbacks are awaited
        seen.append(p)

    started: list[str] = []
    sid = await Producer(redis).push_file(
        path,
        speed=None,
        on_progress=on_progress,
        on_started=started.append,
        features=Features(analytics=True),
    )
    entries = await inbox(redis, sid)
    config = msgspec.json.decode(entries[0][b"config"], type=SessionConfig)
    assert started == [sid]
    assert (config.sample_rate, config.encoding, config.channels) == (16000, "pcm_s16le", 1)
    assert config.features.analytics
    media = entries[1:-1]
    assert entries[-1] == {b"type": b"stop"}
    assert [int(m[b"seq"]) for m in media] == list(range(1, 52))  # 50 x 20 ms + a 10 ms tail
    assert {len(m[b"data"]) for m in media[:-1]} == {640} and len(media[-1][b"data"]) == 320
    assert b"".join(m[b"data"] for m in media) == pcm.tobytes()
    assert seen[-1].finished and seen[-1].frames_sent == 51
    assert seen[-1].audio_sent_s == pytest.approx(1.01)
    assert seen[-1].total_s == pytest.approx(1.01)


async def test_push_file_keeps_stereo_only_as_speakers(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "stereo.flac"
    pcm = tone(path, 0.2, rate=8000, channels=2)
    producer = Producer(redis)
    both = await producer.push_file(path, speed=None, channels_as_speakers=True, frame_ms=40)
    mono = await producer.push_file(path, speed=None)

    entries = await inbox(redis, both)
    config = msgspec.json.decode(entries[0][b"config"], type=SessionConfig)
    assert (config.sample_rate, config.channels, config.channels_as_speakers) == (8000, 2, True)
    assert len(entries[1][b"data"]) == 320 * 2 * 2  # 40 ms of 8 kHz stereo s16
    assert b"".join(e[b"data"] for e in entries[1:-1]) == pcm.tobytes()  # interleaved
    mono_config = msgspec.json.decode((await inbox(redis, mono))[0][b"config"], type=SessionConfig)
    assert (mono_config.channels, mono_config.channels_as_speakers) == (1, False)


async def test_push_file_paces_at_speed_times_real_time(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "tone.wav"
    tone(path, 1.2)
    times: list[tuple[float, float]] = []
    begin = time.monotonic()
    await Producer(redis).push_file(
        path, speed=3.0, on_progress=lambda p: times.append((p.audio_sent_s, p.elapsed_s))
    )
    took = time.monotonic() - begin
    assert 0.38 <= took < 0.9  # 1.2 s of audio at 3x: 0.4 s
    # Never ahead of the audio clock: frame k goes out once k's audio has happened.
    assert all(elapsed >= audio / 3.0 - 0.002 for audio, elapsed in times)
    assert max(elapsed - audio / 3.0 for audio, elapsed in times) < 0.25


async def test_push_file_refuses_bad_input_before_registering(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    producer = Producer(redis, limits=Limits(max_frame_bytes=1000))
    path = tmp_path / "tone.wav"
    tone(path, 0.1)
    with pytest.raises(FrameTooLarge, match="frame_ms"):
        await producer.push_file(path, frame_ms=40)  # 1280 bytes
    with pytest.raises(InvalidFrame, match="frame_ms"):
        await producer.push_file(path, frame_ms=0)
    with pytest.raises(ValueError, match="speed"):
        await producer.push_file(path, speed=0)
    with pytest.raises(AudioFileError):
        await producer.push_file(tmp_path / "nothing.flac")
    assert await redis.exists(keys.registry()) == 0


async def test_cancelled_push_still_sends_stop(redis: aioredis.Redis) -> None:
    started: list[str] = []
    task = asyncio.create_task(
        Producer(redis).push_file(FIXTURES / "conv_short.flac", on_started=started.append)
    )
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    entries = await inbox(redis, started[0])
    assert entries[-1] == {b"type": b"stop"}
    assert 5 <= len(entries) - 2 <= 25  # about 0.3 s of 20 ms frames went out
