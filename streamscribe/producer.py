"""Producer SDK: start a session, send audio frames, stop it; or push a whole audio file."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from shared import keys
from shared.protocol import MAX_SEQ, SAMPLE_WIDTH, Limits, check_config, valid_seq
from shared.schemas import Features, SessionConfig
from streamscribe.audio_file import (
    AudioFileInfo,
    Pacer,
    decode,
    frame_duration_s,
    frame_samples,
    probe,
    split_frames,
)

# The protocol's rules (shared/protocol.py) are checked here too, to fail before sending.
# Frames per pipelined round trip when pushing as fast as possible.
_FAST_BATCH = 64


class ProducerError(ValueError):
    """A request the pipeline would reject; raised before anything is written."""


class InvalidConfig(ProducerError):
    """A SessionConfig outside what ingest accepts."""


class InvalidFrame(ProducerError):
    """A media frame with a bad seq, no data, or a size that splits a sample."""


class FrameTooLarge(InvalidFrame):
    """A media frame over ingest's `max_frame_bytes`."""


class SessionExists(ProducerError):
    """The session id already has an inbox or events; ids are never reused."""


@dataclass(frozen=True, slots=True)
class PushProgress:
    """Where `push_file` is; passed to `on_progress` after each send."""

    session_id: str
    frames_sent: int
    audio_sent_s: float
    total_s: float | None  # None when the container does not state a duration
    elapsed_s: float
    # Wall-clock time (time.time()) of the last send: compare with an event's emitted_at.
    sent_at: float
    finished: bool = False


ProgressCallback = Callable[[PushProgress], object]


def new_session_id() -> str:
    """A fresh session id (`s-` + 12 hex digits)."""
    return f"s-{uuid.uuid4().hex[:12]}"


class Producer:
    """Writes the producer side of the bus contract for any number of sessions."""

    def __init__(self, redis: aioredis.Redis, *, limits: Limits | None = None) -> None:
        self.redis = redis
        # The same limits ingest enforces, checked here first so errors name the caller.
        self.limits = limits or Limits()
        self._configs: dict[str, SessionConfig] = {}

    async def start(
        self, session_id: str | None = None, config: SessionConfig | None = None
    ) -> str:
        """Register a session and send its `start`; returns the session id."""
        sid = keys.check_session_id(session_id) if session_id else new_session_id()
        config = config or SessionConfig()
        self.check_config(config)
        if await self.redis.exists(keys.inbox(sid), keys.events(sid)):
            raise SessionExists(f"session {sid!r} already exists; use a new session id")
        # Bus contract: registry entry first, then the inbox's `start`.
        registration: dict[FieldT, EncodableT] = {"session_id": sid}
        await self.redis.xadd(keys.registry(), registration)
        await self.redis.xadd(keys.inbox(sid), start_fields(config))
        self._configs[sid] = config
        return sid

    async def send(self, session_id: str, seq: int, data: bytes) -> None:
        """Send one media frame; `seq` starts at 1 and orders the frames."""
        self._check_frame(session_id, seq, data)
        await self.redis.xadd(keys.inbox(session_id), media_fields(seq, data))

    async def send_many(self, session_id: str, frames: Iterable[tuple[int, bytes]]) -> int:
        """Send (seq, data) frames in one pipelined round trip; returns how many."""
        pipe = self.redis.pipeline(transaction=False)
        count = 0
        for seq, data in frames:
            self._check_frame(session_id, seq, data)
            pipe.xadd(keys.inbox(session_id), media_fields(seq, data))
            count += 1
        if count:
            await pipe.execute()
        return count

    async def stop(self, session_id: str) -> None:
        """Tell the pipeline no more frames follow; it finishes and publishes `done`."""
        await self.redis.xadd(keys.inbox(keys.check_session_id(session_id)), stop_fields())
        self._configs.pop(session_id, None)

    async def finalize(self, session_id: str) -> None:
        """Close the session's open utterances now: each becomes a final at the audio sent
        so far, as at a pause (Deepgram's `Finalize`); the session goes on."""
        await self.redis.xadd(keys.inbox(keys.check_session_id(session_id)), finalize_fields())

    async def push_file(
        self,
        path: str | Path,
        *,
        session_id: str | None = None,
        speed: float | None = 1.0,
        channels_as_speakers: bool = False,
        frame_ms: float = 20,
        on_progress: ProgressCallback | None = None,
        on_started: Callable[[str], object] | None = None,
        language: str | None = None,
        features: Features | None = None,
    ) -> str:
        """Decode an audio file and stream it as one session; returns the session id.

        Frames are pcm_s16le of `frame_ms` at the file's own rate when ingest accepts it
        (8-48 kHz), else resampled to 16 kHz. Stereo is downmixed to mono unless
        `channels_as_speakers`. `speed` paces sends at that multiple of real time
        (None: as fast as possible). `on_started(session_id)` runs once the session is
        registered, `on_progress` after each send (both may be sync or async). If sending
        fails or is cancelled after `start`, `stop` is still sent so the pipeline
        finishes what it received. Raises AudioFileError or ProducerError before
        anything is written when the file or the options cannot work.
        """
        if not (isinstance(frame_ms, int | float) and frame_ms > 0):
            raise InvalidFrame(f"frame_ms must be a positive number, got {frame_ms!r}")
        try:
            pacer = Pacer(speed)
        except ValueError as exc:
            raise ProducerError(str(exc)) from None
        info = probe(path, channels_as_speakers=channels_as_speakers)
        samples = frame_samples(info.sample_rate, frame_ms)
        self._check_frame_size(samples * info.channels * 2, frame_ms)
        config = SessionConfig(
            sample_rate=info.sample_rate,
            encoding="pcm_s16le",
            channels=info.channels,
            channels_as_speakers=channels_as_speakers,
            language=language,
            features=features or Features(),
        )
        sid = await self.start(session_id, config)
        try:
            if on_started is not None:
                await _call(on_started, sid)
            await self._stream_frames(sid, info, samples, pacer, on_progress)
        except BaseException:
            # Best effort: the pipeline should still close what it got (Ctrl-C included).
            with contextlib.suppress(Exception):
                await asyncio.shield(self.stop(sid))
            raise
        await self.stop(sid)
        return sid

    async def _stream_frames(
        self,
        sid: str,
        info: AudioFileInfo,
        samples_per_frame: int,
        pacer: Pacer,
        on_progress: ProgressCallback | None,
    ) -> None:
        batch: list[tuple[int, bytes]] = []
        seq = 0
        audio_s = 0.0

        async def flush(finished: bool = False) -> None:
            if batch:
                await self.send_many(sid, batch)
                batch.clear()
            if on_progress is not None:
                progress = PushProgress(
                    session_id=sid,
                    frames_sent=seq,
                    audio_sent_s=audio_s,
                    total_s=info.duration_s,
                    elapsed_s=pacer.elapsed_s(),
                    sent_at=time.time(),
                    finished=finished,
                )
                await _call(on_progress, progress)

        pacer.start()
        for frame in split_frames(decode(info), samples_per_frame):
            seq += 1
            audio_s += frame_duration_s(frame, info.sample_rate, info.channels)
            # A frame is sent once its audio has "happened", as from a live source.
            delay = pacer.delay_s(audio_s)
            if delay > 0:
                await asyncio.sleep(delay)
            batch.append((seq, frame))
            if pacer.speed is not None or len(batch) >= _FAST_BATCH:
                await flush()
        await flush(finished=True)

    # --- validation ---------------------------------------------------------------------

    def check_config(self, config: SessionConfig) -> None:
        """Raise InvalidConfig for what ingest would reject."""
        violation = check_config(config, self.limits)
        if violation is not None:
            raise InvalidConfig(violation.message)

    def _check_frame_size(self, size: int, frame_ms: float) -> None:
        if size > self.limits.max_frame_bytes:
            raise FrameTooLarge(
                f"frames of {frame_ms} ms are {size} bytes, over the "
                f"{self.limits.max_frame_bytes}-byte frame limit; use a smaller frame_ms"
            )

    def _check_frame(self, session_id: str, seq: int, data: bytes) -> None:
        if not valid_seq(seq):
            raise InvalidFrame(f"seq must be an int from 1 to {MAX_SEQ}, got {seq!r}")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidFrame(f"frame data must be bytes, got {type(data).__name__}")
        size = len(data)
        if size == 0:
            raise InvalidFrame(f"frame {seq} is empty")
        if size > self.limits.max_frame_bytes:
            raise FrameTooLarge(
                f"frame {seq} is {size} bytes, over the {self.limits.max_frame_bytes}-byte limit"
            )
        config = self._configs.get(session_id)
        sample_bytes = SAMPLE_WIDTH.get(config.encoding, 0) if config else 0
        if config and sample_bytes and size % (sample_bytes * config.channels):
            raise InvalidFrame(
                f"frame {seq} is {size} bytes, not a whole number of {config.encoding} "
                f"samples for {config.channels} channel(s)"
            )


def start_fields(config: SessionConfig) -> dict[FieldT, EncodableT]:
    """The inbox message that opens a session (docs/PROTOCOL.md)."""
    return {"type": "start", "config": msgspec.json.encode(config)}


def media_fields(seq: int, data: bytes) -> dict[FieldT, EncodableT]:
    """One media frame's inbox message."""
    return {"type": "media", "seq": str(seq), "data": bytes(data)}


def stop_fields() -> dict[FieldT, EncodableT]:
    """The inbox message that ends a session's input."""
    return {"type": "stop"}


def finalize_fields() -> dict[FieldT, EncodableT]:
    """The inbox message that closes the open utterances at once."""
    return {"type": "finalize"}


async def _call(callback: Callable[..., object], *args: object) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        await result
