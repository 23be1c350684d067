"""One benchmark session: push a recording at real-time pace and record every event's arrival.

Besides each segment's arrival, the events the stage analysis needs (finals, enrichments,
semantic updates, analytics snapshots, `done`) are kept whole: their `emitted_at` is the
publishing stage's own clock, which `bench.stages` measures stage lags with.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from bench.latency import SegmentArrival
from bench.reference import Reference
from shared.consumer import TranscriptReducer, read_events
from shared.schemas import (
    AnalyticsSnapshot,
    Done,
    Error,
    Event,
    PartialSegment,
    SegmentEnriched,
    SegmentFinalized,
    SemanticUpdate,
)
from streamscribe.producer import Producer, PushProgress


@dataclass
class SessionRecord:
    """What one session did, as the producer and a consumer of its events saw it."""

    reference: Reference
    session_id: str
    # (audio seconds pushed so far, wall time of that push)
    push_marks: list[tuple[float, float]] = field(default_factory=list)
    arrivals: list[SegmentArrival] = field(default_factory=list)
    reducer: TranscriptReducer | None = None
    started_at: float | None = None
    push_finished_at: float | None = None
    done_at: float | None = None
    errors: list[str] = field(default_factory=list)
    timed_out: bool = False
    # Finals, enrichments, semantic updates, analytics snapshots and `done`, in seq order.
    stage_events: list[Event] = field(default_factory=list)

    @property
    def audio_sent_s(self) -> float:
        return self.push_marks[-1][0] if self.push_marks else 0.0

    @property
    def finals(self) -> list[SegmentArrival]:
        return [a for a in self.arrivals if a.final]

    @property
    def partials(self) -> int:
        return sum(1 for a in self.arrivals if not a.final)

    def progress_line(self) -> str:
        state = "done" if self.done_at else ("timed out" if self.timed_out else "running")
        last = self.finals[-1].text[:40] if self.finals else ""
        return (
            f"{self.reference.name:<10} "
            f"sent {self.audio_sent_s:5.1f}/{self.reference.duration_s:.1f}s"
            f"  partials {self.partials:3d}  finals {len(self.finals):2d}  {state:<9}"
            f"  last final: {last!r}"
        )


async def run_session(
    redis: aioredis.Redis,
    record: SessionRecord,
    *,
    speed: float,
    delay_s: float = 0.0,
    done_timeout_s: float = 120.0,
) -> SessionRecord:
    """Start after `delay_s`, push the file at `speed`, read events until `done`.

    `done_timeout_s` bounds the wait for `done` after the last frame was pushed.
    """
    await asyncio.sleep(delay_s)
    ref = record.reference
    record.reducer = TranscriptReducer(record.session_id)
    consumer = asyncio.create_task(_consume(redis, record))

    def on_progress(p: PushProgress) -> None:
        record.push_marks.append((p.audio_sent_s, p.sent_at))

    record.started_at = time.time()
    try:
        await Producer(redis).push_file(
            ref.path,
            session_id=record.session_id,
            speed=speed,
            channels_as_speakers=ref.stereo,
            on_progress=on_progress,
        )
        record.push_finished_at = time.time()
        await asyncio.wait_for(asyncio.shield(consumer), timeout=done_timeout_s)
    except TimeoutError:
        record.timed_out = True
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    return record


_STAGE_EVENTS = (SegmentFinalized, SegmentEnriched, SemanticUpdate, AnalyticsSnapshot, Done)


async def _consume(redis: aioredis.Redis, record: SessionRecord) -> None:
    assert record.reducer is not None
    async for event in read_events(redis, record.session_id, follow=True):
        arrived_at = time.time()
        record.reducer.apply(event)
        if isinstance(event, _STAGE_EVENTS):
            record.stage_events.append(event)
        if isinstance(event, PartialSegment | SegmentFinalized):
            seg = event.payload
            record.arrivals.append(
                SegmentArrival(
                    segment_id=seg.id,
                    start_s=seg.start,
                    end_s=seg.end,
                    text=seg.text,
                    channel=seg.channel,
                    final=isinstance(event, SegmentFinalized),
                    arrived_at=arrived_at,
                    decodes=seg.asr.decodes if seg.asr else 0,
                )
            )
        elif isinstance(event, Error):
            record.errors.append(f"{event.payload.code}: {event.payload.message}")
        elif isinstance(event, Done):
            record.done_at = arrived_at
