"""Wire format of the normalized audio log (`ss:{sid}:audio`): entries <-> stream fields."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from shared.schemas import AudioChunk, AudioEntry, EndMark, VadMark

Fields = dict[str, str | bytes | int]


def to_fields(entry: AudioEntry) -> Fields:
    """Stream fields for one entry (flat, so redis-cli users can read them too)."""
    match entry:
        case AudioChunk():
            return {"kind": "audio", "ch": entry.channel, "pos": entry.pos, "pcm": entry.pcm}
        case VadMark():
            return {"kind": "vad", "ch": entry.channel, "pos": entry.pos, "state": entry.state}
        case EndMark():
            return {"kind": "end", "pos": entry.pos}
    raise TypeError(f"not an audio log entry: {entry!r}")


def from_fields(fields: Mapping[bytes, bytes]) -> AudioEntry:
    """Parse one stream entry written by `to_fields`."""
    kind = fields[b"kind"]
    pos = int(fields[b"pos"])
    if kind == b"audio":
        return AudioChunk(channel=int(fields[b"ch"]), pos=pos, pcm=fields[b"pcm"])
    if kind == b"vad":
        state = fields[b"state"].decode()
        if state not in ("start", "pause", "resume", "end"):
            raise ValueError(f"unknown VAD state {state!r}")
        return VadMark(channel=int(fields[b"ch"]), pos=pos, state=state)  # type: ignore[arg-type]
    if kind == b"end":
        return EndMark(pos=pos)
    raise ValueError(f"unknown audio log entry kind {kind!r}")


def pcm_to_float(pcm: bytes) -> np.ndarray:
    """s16le bytes -> float32 in [-1, 1)."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm(samples: np.ndarray) -> bytes:
    """float32 in [-1, 1] -> s16le bytes (clipped)."""
    clipped = np.clip(samples, -1.0, 32767.0 / 32768.0)
    pcm: bytes = (clipped * 32768.0).astype("<i2").tobytes()
    return pcm


def window(chunks: Sequence[tuple[str, int, np.ndarray]], start: int, end: int) -> np.ndarray:
    """Samples [start, end) of a track held as (entry id, first position, samples) chunks
    in position order; only what the chunks hold (gaps are left out, not zero-filled)."""
    parts = []
    for _id, pos, samples in chunks:
        lo, hi = max(start, pos), min(end, pos + len(samples))
        if lo < hi:
            parts.append(samples[lo - pos : hi - pos])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
