"""Decode any audio file into paced PCM s16le frames for a producer (no Redis here)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soxr

# What ingest accepts without resampling (IngestSettings.min/max_sample_rate); anything
# else is resampled here so the session stays within ingest's limits.
MIN_NATIVE_RATE = 8_000
MAX_NATIVE_RATE = 48_000
FALLBACK_RATE = 16_000
_S16_BYTES = 2


class AudioFileError(ValueError):
    """The file cannot be opened or decoded as audio."""


@dataclass(frozen=True, slots=True)
class AudioFileInfo:
    """What a decoded file will be sent as."""

    path: Path
    source_rate: int
    source_channels: int
    sample_rate: int  # after resampling (the session's `sample_rate`)
    channels: int  # after optional downmix (the session's `channels`)
    duration_s: float | None  # from the container; None when it does not say

    @property
    def resampled(self) -> bool:
        return self.sample_rate != self.source_rate


def target_rate(source_rate: int) -> int:
    """Keep a native rate ingest accepts; otherwise resample to 16 kHz."""
    if MIN_NATIVE_RATE <= source_rate <= MAX_NATIVE_RATE:
        return source_rate
    return FALLBACK_RATE


def probe(path: str | Path, *, channels_as_speakers: bool = False) -> AudioFileInfo:
    """Open `path` and describe what `decode` will produce; raises AudioFileError."""
    path = Path(path)
    with _open(path) as container:
        stream = _audio_stream(container, path)
        rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        channels = int(stream.codec_context.layout.nb_channels or 0)
        if rate <= 0 or channels <= 0:
            raise AudioFileError(f"{path}: audio stream has no sample rate or channel count")
        duration = _duration_s(container, stream)
    return AudioFileInfo(
        path=path,
        source_rate=rate,
        source_channels=channels,
        sample_rate=target_rate(rate),
        channels=channels if channels_as_speakers else 1,
        duration_s=duration,
    )


def decode(info: AudioFileInfo, *, block_samples: int = 8192) -> Iterator[np.ndarray]:
    """Yield float32 blocks shaped (samples, info.channels) at info.sample_rate.

    Decoding streams: a long recording is never held in memory whole.
    """
    resampler = (
        soxr.ResampleStream(info.source_rate, info.sample_rate, info.channels, dtype="float32")
        if info.resampled
        else None
    )
    with _open(info.path) as container:
        stream = _audio_stream(container, info.path)
        # Planar float keeps layout and rate: (channels, samples) per decoded frame.
        to_float = av.AudioResampler(format="fltp")
        try:
            for packet_frame in container.decode(stream):
                for frame in to_float.resample(packet_frame):
                    block = _shape(frame.to_ndarray(), info)
                    if resampler is not None:
                        block = resampler.resample_chunk(block, last=False)
                    if len(block):
                        yield block
        except av.error.FFmpegError as exc:
            raise AudioFileError(f"{info.path}: cannot decode: {exc}") from exc
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros((0, info.channels), np.float32), last=True)
            if len(tail):
                yield tail


def to_s16(block: np.ndarray) -> np.ndarray:
    """float32 [-1, 1) -> int16, clipped (the inverse of s16 / 32768, so s16 input is exact)."""
    return np.clip(np.rint(block * 32768.0), -32768, 32767).astype(np.int16)


def frame_samples(sample_rate: int, frame_ms: float) -> int:
    """Samples per channel in one frame of `frame_ms`."""
    samples = round(sample_rate * frame_ms / 1000)
    if samples <= 0:
        raise ValueError(f"frame_ms={frame_ms} gives no samples at {sample_rate} Hz")
    return samples


def split_frames(blocks: Iterator[np.ndarray], samples_per_frame: int) -> Iterator[bytes]:
    """Re-chunk (samples, channels) float blocks into interleaved s16le frames.

    Every frame has exactly `samples_per_frame` samples per channel except the last,
    which is shorter rather than padded: padding would add audio that was not there.
    """
    pending: list[np.ndarray] = []
    pending_len = 0
    for block in blocks:
        pending.append(to_s16(block))
        pending_len += len(block)
        if pending_len < samples_per_frame:
            continue
        joined = np.concatenate(pending)
        whole = (len(joined) // samples_per_frame) * samples_per_frame
        for start in range(0, whole, samples_per_frame):
            yield joined[start : start + samples_per_frame].tobytes()
        rest = joined[whole:]
        pending, pending_len = ([rest], len(rest)) if len(rest) else ([], 0)
    if pending_len:
        yield np.concatenate(pending).tobytes()


def frame_duration_s(frame: bytes, sample_rate: int, channels: int) -> float:
    """Audio seconds in one s16le frame."""
    return len(frame) / (_S16_BYTES * channels * sample_rate)


class Pacer:
    """Paces sends at `speed` x real time against a monotonic clock.

    Each deadline is computed from the absolute audio position (t0 + audio_s / speed),
    never from the previous send, so a slow send is caught up and no drift accumulates.
    `speed=None` sends as fast as possible.
    """

    def __init__(self, speed: float | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number or None, got {speed!r}")
        self.speed = speed
        self._clock = clock
        self._t0: float | None = None

    def start(self) -> None:
        self._t0 = self._clock()

    def delay_s(self, audio_s: float) -> float:
        """Seconds to wait before audio up to `audio_s` may be sent (0 when late)."""
        if self.speed is None:
            return 0.0
        if self._t0 is None:
            self.start()
        assert self._t0 is not None
        return max(0.0, self._t0 + audio_s / self.speed - self._clock())

    def elapsed_s(self) -> float:
        return 0.0 if self._t0 is None else self._clock() - self._t0


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise AudioFileError(f"{path}: not a readable audio file ({exc})") from exc


def _audio_stream(container: av.container.InputContainer, path: Path) -> av.AudioStream:
    if not container.streams.audio:
        raise AudioFileError(f"{path}: has no audio stream")
    return container.streams.audio[0]


def _duration_s(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _shape(planar: np.ndarray, info: AudioFileInfo) -> np.ndarray:
    """(channels, samples) planar float -> (samples, channels), downmixed when asked."""
    planar = planar.astype(np.float32, copy=False)
    if info.channels == 1 and planar.shape[0] > 1:
        return planar.mean(axis=0, dtype=np.float32)[:, None]
    return np.ascontiguousarray(planar.T)
