"""The enrich stage's view of a session's audio log: a segment's samples, on demand.

Reads the log in order from the stage's resume point, keeps the chunks per track
(channel) from the end of the last enriched segment on, and reports the oldest log
entry it still needs, which its checkpoint names as `resume_id` so the log is never
trimmed below it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np

from shared import keys
from shared.audio_log import from_fields, pcm_to_float, window
from shared.bus import Bus, StreamEntry, xrange, xread
from shared.protocol import WORKING_SAMPLE_RATE
from shared.schemas import AudioChunk, EndMark

_READ_COUNT = 256
# Audio a track keeps behind the newest audio read: a final is at most the asr cap
# (15 s) long and comes within seconds of its audio, so two minutes is ample; a silent
# track's audio then does not pile up in memory or hold the log untrimmed.
KEEP_BEHIND_S = 120.0
# Reads that find nothing this long while a segment's audio is missing mean the log
# lost it (expired, or trimmed by a stage outside this pipeline): give up on it.
STARVED_S = 10.0


class AudioUnavailable(RuntimeError):
    """A segment's audio is not (any longer) in the audio log."""


@dataclass
class _Track:
    # (log entry id, first sample position, samples), in position order.
    chunks: list[tuple[str, int, np.ndarray]] = field(default_factory=list)

    def end(self) -> int:
        if not self.chunks:
            return 0
        _id, pos, samples = self.chunks[-1]
        return pos + len(samples)

    def window(self, start: int, end: int) -> np.ndarray:
        return window(self.chunks, start, end)


class AudioWindow:
    """Segments' audio from one session's log, read forward as far as they need."""

    def __init__(self, bus: Bus, session_id: str, resume_id: str | None, block_ms: int) -> None:
        self.bus = bus
        self.stream = keys.audio(session_id)
        self.block_ms = block_ms
        self.tracks: dict[int, _Track] = {}
        self.ended = False
        # Inclusive: the checkpoint names the oldest entry still needed.
        self._resume_from = resume_id
        self._last_id = "0-0"

    async def segment(self, channel: int, start_s: float, end_s: float) -> np.ndarray:
        """The samples of [start_s, end_s) on `channel` (shorter only if the log ends)."""
        start = max(0, round(start_s * WORKING_SAMPLE_RATE))
        end = max(start, round(end_s * WORKING_SAMPLE_RATE))
        track = self.tracks.setdefault(channel, _Track())
        starved_reads = 0
        while track.end() < end and not self.ended:
            if await self._read_more():
                starved_reads = 0
                continue
            starved_reads += 1
            if starved_reads * self.block_ms >= STARVED_S * 1000:
                raise AudioUnavailable(
                    f"audio of channel {channel} up to {end_s:.2f} s is not in the log"
                )
        audio = track.window(start, end)
        if len(audio) < end - start and (end - start - len(audio)) > WORKING_SAMPLE_RATE // 10:
            raise AudioUnavailable(
                f"audio of channel {channel} at {start_s:.2f}-{end_s:.2f} s is not in the log"
            )
        return audio

    def release(self, channel: int, before_s: float) -> None:
        """Audio of `channel` before `before_s` is not needed again (finals come in order)."""
        before = round(before_s * WORKING_SAMPLE_RATE)
        track = self.tracks.get(channel)
        if track is not None:
            track.chunks = [c for c in track.chunks if c[1] + len(c[2]) > before]

    async def finish(self) -> None:
        """No segment will be asked for again: hold nothing, point past the whole log."""
        self.tracks.clear()
        self._resume_from = None
        newest = cast(list[StreamEntry], await self.bus.redis.xrevrange(self.stream, count=1))
        if newest:
            self._last_id = newest[0][0].decode()

    def resume_id(self) -> str:
        """The oldest log entry still held (or the next to read): where a takeover reads."""
        held = [t.chunks[0][0] for t in self.tracks.values() if t.chunks]
        if held:
            return min(held, key=_id_key)
        return self._resume_from or self._last_id

    async def _read_more(self) -> bool:
        """Read the next entries into the tracks; False when none came."""
        redis = self.bus.redis
        if self._resume_from is not None:
            entries = await xrange(redis, self.stream, min=self._resume_from, count=_READ_COUNT)
            self._resume_from = None
        else:
            entries = await xrange(redis, self.stream, min=f"({self._last_id}", count=_READ_COUNT)
            if not entries:
                for _stream, batch in await xread(
                    redis, {self.stream: self._last_id}, count=_READ_COUNT, block=self.block_ms
                ):
                    entries = batch
        for entry_id, fields in entries:
            self._last_id = entry_id.decode()
            entry = from_fields(fields)
            if isinstance(entry, AudioChunk):
                track = self.tracks.setdefault(entry.channel, _Track())
                track.chunks.append((self._last_id, entry.pos, pcm_to_float(entry.pcm)))
            elif isinstance(entry, EndMark):
                self.ended = True
        if entries:
            self._forget_old()
        return bool(entries)

    def _forget_old(self) -> None:
        newest = max((t.end() for t in self.tracks.values()), default=0)
        horizon = newest - round(KEEP_BEHIND_S * WORKING_SAMPLE_RATE)
        if horizon > 0:
            for track in self.tracks.values():
                track.chunks = [c for c in track.chunks if c[1] + len(c[2]) > horizon]


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
