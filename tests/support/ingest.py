"""Test helpers for the ingest stage: fixture audio, frame encoders, a raw producer, a worker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path

import av
import numpy as np
import redis.asyncio as aioredis
import soundfile as sf
from redis.typing import EncodableT, FieldT

from services.ingest.vad import SileroModel
from services.ingest.worker import IngestHandler
from shared import keys
from shared.audio_log import from_fields, pcm_to_float
from shared.bus import Bus
from shared.consumer import read_events
from shared.schemas import AudioChunk, AudioEntry, Done, EndMark, Event, SessionConfig, VadMark
from shared.settings import Settings
from shared.worker import Worker
from streamscribe import producer
from streamscribe.producer import media_fields

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

_MODEL: SileroModel | None = None


def vad_model() -> SileroModel:
    """One VAD model for the whole test run (loading it is the slow part)."""
    global _MODEL
    if _MODEL is None:
        _MODEL = SileroModel()
    return _MODEL


def load_fixture(name: str) -> tuple[np.ndarray, int]:
    """A committed fixture as float32 (samples, channels) and its sample rate."""
    samples, rate = sf.read(FIXTURES / f"{name}.flac", dtype="float32", always_2d=True)
    return samples, int(rate)


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """A quiet sine (samples, channels), each channel at a different pitch."""
    t = np.arange(int(seconds * rate)) / rate
    cols = [0.3 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def resample_to(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Whole-signal resampling for making test input at another rate."""
    import soxr

    return np.asarray(soxr.resample(samples, rate, target), dtype=np.float32)


def pcm_bytes(samples: np.ndarray, encoding: str) -> bytes:
    """Interleaved PCM of (samples, channels) float32."""
    if encoding == "pcm_f32le":
        return samples.astype("<f4").tobytes()
    return (np.clip(samples, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


def pcm_frames(samples: np.ndarray, encoding: str, frame_samples: int) -> list[bytes]:
    """Split (samples, channels) into PCM frames of `frame_samples` sample frames."""
    return [
        pcm_bytes(samples[i : i + frame_samples], encoding)
        for i in range(0, len(samples), frame_samples)
    ]


def opus_packets(samples: np.ndarray, rate: int = 48000) -> list[bytes]:
    """Encode (samples, channels) float32 with PyAV's libopus into raw packets (20 ms)."""
    channels = samples.shape[1]
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = rate
    encoder.layout = "stereo" if channels == 2 else "mono"
    encoder.format = "s16"
    encoder.open()
    size = encoder.frame_size
    pcm = (np.clip(samples, -1, 32767 / 32768) * 32768).astype(np.int16)
    usable = len(pcm) // size * size
    packets: list[bytes] = []
    for i in range(0, usable, size):
        chunk = np.ascontiguousarray(pcm[i : i + size]).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=encoder.layout.name)
        frame.sample_rate = rate
        frame.pts = i
        packets.extend(bytes(p) for p in encoder.encode(frame))
    packets.extend(bytes(p) for p in encoder.encode(None))
    return packets


def start_fields(config: SessionConfig | bytes) -> dict[FieldT, EncodableT]:
    """The producer's `start` message; raw bytes stand in for a malformed config."""
    if isinstance(config, bytes):
        return {"type": "start", "config": config}
    return producer.start_fields(config)


STOP = producer.stop_fields()


async def push(
    redis: aioredis.Redis,
    session_id: str,
    messages: Iterable[Mapping[FieldT, EncodableT]],
    *,
    register: bool = False,
) -> None:
    """XADD raw producer messages to the inbox (and the registry entry first if asked)."""
    if register:
        await redis.xadd(keys.registry(), {"session_id": session_id})
    pipe = redis.pipeline(transaction=False)
    for fields in messages:
        pipe.xadd(keys.inbox(session_id), dict(fields))  # type: ignore[arg-type]
    await pipe.execute()


def session_messages(
    config: SessionConfig, frames: Sequence[bytes], *, stop: bool = True
) -> list[dict[str, bytes | str]]:
    """start, media 1..n, stop."""
    messages = [start_fields(config)]
    messages += [media_fields(seq, data) for seq, data in enumerate(frames, start=1)]
    if stop:
        messages.append(STOP)
    return messages


async def audio_log(redis: aioredis.Redis, session_id: str) -> list[AudioEntry]:
    rows: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(keys.audio(session_id))  # type: ignore[assignment]
    return [from_fields(fields) for _id, fields in rows]


def track_audio(entries: Sequence[AudioEntry], channel: int) -> np.ndarray:
    """A track's samples, checking that chunk positions are continuous."""
    parts = []
    pos = 0
    for entry in entries:
        if isinstance(entry, AudioChunk) and entry.channel == channel:
            assert entry.pos == pos, f"track {channel}: chunk at {entry.pos}, expected {pos}"
            samples = pcm_to_float(entry.pcm)
            parts.append(samples)
            pos += len(samples)
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def vad_marks(entries: Sequence[AudioEntry], channel: int = 0) -> list[tuple[str, int]]:
    return [(e.state, e.pos) for e in entries if isinstance(e, VadMark) and e.channel == channel]


def end_marks(entries: Sequence[AudioEntry]) -> list[EndMark]:
    return [e for e in entries if isinstance(e, EndMark)]


async def events(redis: aioredis.Redis, session_id: str) -> list[Event]:
    return [e async for e in read_events(redis, session_id)]


async def wait_done(redis: aioredis.Redis, session_id: str, timeout_s: float = 20.0) -> list[Event]:
    """The session's events once `done` is published (pipeline = ingest only)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = await events(redis, session_id)
        if any(isinstance(e, Done) for e in got):
            return got
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no done for {session_id}: {[type(e).__name__ for e in got]}")


def ingest_settings(settings: Settings, **overrides: object) -> Settings:
    """The fixture settings with ingest as the whole pipeline (so ingest publishes done)."""
    return settings.with_overrides(pipeline=("ingest",), **overrides)


@contextlib.asynccontextmanager
async def running_worker(
    bus: Bus, settings: Settings, handler: IngestHandler | None = None
) -> AsyncIterator[Worker]:
    """An ingest Worker running in a task until the block exits (then drained)."""
    # Share the test run's model instead of loading one per worker.
    handler = handler or IngestHandler(settings, model=vad_model())
    worker = Worker(handler, bus, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
