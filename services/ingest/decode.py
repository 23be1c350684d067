"""Frame decoding (PCM s16le/f32le, Opus via PyAV), downmix or split, resampling to 16 kHz."""

from __future__ import annotations

from typing import Protocol

import av
import numpy as np
import soxr

from shared.schemas import AUDIO_SAMPLE_RATE, SessionConfig

_PCM_DTYPES = {"pcm_s16le": ("<i2", 32768.0), "pcm_f32le": ("<f4", 1.0)}
_INT_SCALE = {np.dtype("int16"): 32768.0, np.dtype("int32"): 2147483648.0}


class DecodeError(ValueError):
    """A frame whose bytes cannot be turned into audio (the frame is dropped)."""


class FrameDecoder(Protocol):
    """Turns one frame's bytes into float32 samples shaped (channels, n) at `rate` Hz."""

    def decode(self, data: bytes) -> tuple[np.ndarray, int]: ...


class PcmDecoder:
    """Interleaved little-endian PCM; the frame length was checked against the config."""

    def __init__(self, encoding: str, channels: int, sample_rate: int) -> None:
        self.dtype, self.scale = _PCM_DTYPES[encoding]
        self.channels = channels
        self.sample_rate = sample_rate

    def decode(self, data: bytes) -> tuple[np.ndarray, int]:
        width = np.dtype(self.dtype).itemsize
        if len(data) % (width * self.channels):
            raise DecodeError("frame length is not a whole number of sample frames")
        samples = np.frombuffer(data, dtype=self.dtype).astype(np.float32)
        if self.scale != 1.0:
            samples /= self.scale
        return _sanitize(samples.reshape(-1, self.channels).T), self.sample_rate


class OpusDecoder:
    """One raw Opus packet per frame; the decoder keeps its state across packets."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self._codec = self._open()

    def _open(self) -> av.AudioCodecContext:
        codec = av.CodecContext.create("libopus", "r")
        codec.layout = "stereo" if self.channels == 2 else "mono"
        # libopus decodes at 48 kHz whatever the capture rate was; frames say their rate.
        codec.sample_rate = 48000
        return codec

    def decode(self, data: bytes) -> tuple[np.ndarray, int]:
        if not data:
            raise DecodeError("empty Opus packet")
        try:
            frames = self._codec.decode(av.Packet(data))
        except av.error.FFmpegError as exc:
            # A failed packet can leave the decoder draining or confused: start clean.
            self._codec = self._open()
            raise DecodeError(f"Opus packet undecodable: {exc}") from None
        if not frames:
            return np.zeros((self.channels, 0), np.float32), 48000
        parts = [_frame_to_float(frame) for frame in frames]
        return np.concatenate(parts, axis=1), int(frames[0].sample_rate)


def _frame_to_float(frame: av.AudioFrame) -> np.ndarray:
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T
    scale = _INT_SCALE.get(array.dtype)
    samples = array.astype(np.float32)
    if scale is not None:
        samples /= scale
    return _sanitize(samples)


def _sanitize(samples: np.ndarray) -> np.ndarray:
    # f32 input is untrusted: NaN/inf or huge values would poison the resampler and VAD.
    cleaned = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    clipped: np.ndarray = np.clip(cleaned, -1.0, 1.0).astype(np.float32, copy=False)
    return clipped


def make_decoder(config: SessionConfig) -> FrameDecoder:
    """The decoder for a validated config's encoding."""
    if config.encoding == "opus":
        return OpusDecoder(config.channels)
    return PcmDecoder(config.encoding, config.channels, config.sample_rate)


def track_ids(config: SessionConfig) -> list[int]:
    """Audio log channels of a session: one per input channel as speakers, else just 0."""
    return list(range(config.channels)) if config.channels_as_speakers else [0]


def split_tracks(samples: np.ndarray, channels_as_speakers: bool) -> dict[int, np.ndarray]:
    """(channels, n) -> {track: mono samples}: each channel its own track, or the mean."""
    if channels_as_speakers:
        return {c: np.ascontiguousarray(samples[c]) for c in range(samples.shape[0])}
    if samples.shape[0] == 1:
        return {0: samples[0]}
    return {0: samples.mean(axis=0, dtype=np.float32)}


class TrackResampler:
    """Streaming resampler of one track to 16 kHz (a no-op at 16 kHz)."""

    def __init__(self) -> None:
        self._rate = AUDIO_SAMPLE_RATE
        self._stream: soxr.ResampleStream | None = None

    def process(self, samples: np.ndarray, rate: int) -> np.ndarray:
        tail = np.zeros(0, np.float32)
        if rate != self._rate:
            # Only Opus can change rate mid-stream (it never does in practice): drain first.
            tail = self.flush()
            self._rate = rate
            self._stream = None
            if rate != AUDIO_SAMPLE_RATE:
                self._stream = soxr.ResampleStream(
                    rate, AUDIO_SAMPLE_RATE, 1, dtype="float32", quality="HQ"
                )
        out = samples if self._stream is None else self._stream.resample_chunk(samples)
        return np.concatenate([tail, out]) if tail.size else out

    def flush(self) -> np.ndarray:
        """The samples the resampler still holds (end of stream)."""
        if self._stream is None:
            return np.zeros(0, np.float32)
        return np.asarray(
            self._stream.resample_chunk(np.zeros(0, np.float32), last=True), dtype=np.float32
        )


class AudioNormalizer:
    """A session's frames -> 16 kHz mono float32 per track, in the order they are given."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.tracks = track_ids(config)
        self._decoder = make_decoder(config)
        self._resamplers = {track: TrackResampler() for track in self.tracks}

    def decode(self, data: bytes) -> dict[int, np.ndarray]:
        """One frame -> new 16 kHz samples per track; raises DecodeError for a bad frame."""
        samples, rate = self._decoder.decode(data)
        split = split_tracks(samples, self.config.channels_as_speakers)
        return {
            track: np.clip(self._resamplers[track].process(split[track], rate), -1.0, 1.0)
            for track in self.tracks
        }

    def flush(self) -> dict[int, np.ndarray]:
        """What the resamplers still hold, per track (end of stream)."""
        return {track: np.clip(r.flush(), -1.0, 1.0) for track, r in self._resamplers.items()}
