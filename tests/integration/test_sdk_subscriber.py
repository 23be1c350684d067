"""Subscriber SDK against real Redis: callbacks in seq order, following, the transcript."""

from __future__ import annotations

import asyncio

import pytest

from shared.bus import REDIS_UNAVAILABLE, Bus
from shared.schemas import (
    AnalyticsPayload,
    AnalyticsSnapshot,
    Done,
    DonePayload,
    Error,
    ErrorPayload,
    Event,
    PartialSegment,
    Ready,
    ReadyPayload,
    Segment,
    SegmentFinalized,
    SemanticAnnotation,
    SemanticUpdate,
    SessionConfig,
    SpeakerStats,
    Turn,
    TurnUpdated,
)
from shared.settings import Settings
from streamscribe.client import Subscriber, read_transcript, wait_for_done
from tests.redis_harness import RealRedis

SID = "sess-1"


def seg(seg_id: str, text: str, start: float, revision: int, final: bool) -> Segment:
    return Segment(
        id=seg_id,
        start=start,
        end=start + 1.0,
        text=text,
        partial=not final,
        revision=revision,
        speaker_id="spk_0",
    )


def conversation() -> list[Event]:
    """A small session: ready, a segment's partials and final, a turn, annotations, done."""
    turn = Turn(
        id="turn-0", speaker_id="spk_0", start=0.0, end=2.0, text="hello world again",
        segment_ids=["seg-0", "seg-1"], partial=False,
    )  # fmt: skip
    return [
        Ready(session_id=SID, id="ready", payload=ReadyPayload(config=SessionConfig())),
        PartialSegment(
            session_id=SID, id="seg-0", revision=1, payload=seg("seg-0", "hel", 0, 1, False)
        ),
        PartialSegment(
            session_id=SID, id="seg-0", revision=2, payload=seg("seg-0", "hello wor", 0, 2, False)
        ),
        SegmentFinalized(
            session_id=SID, id="seg-0", revision=3, payload=seg("seg-0", "hello world", 0, 3, True)
        ),
        Error(
            session_id=SID,
            id="error:ingest:gap:4",
            payload=ErrorPayload(code="gap", message="frames 4-5 missing", stage="ingest"),
        ),
        SegmentFinalized(
            session_id=SID, id="seg-1", revision=1, payload=seg("seg-1", "again", 1, 1, True)
        ),
        TurnUpdated(session_id=SID, id="turn-0", payload=turn),
        SemanticUpdate(
            session_id=SID,
            id="sem:turn-0",
            payload=SemanticAnnotation(turn=turn, keywords=["hello"]),
        ),
        AnalyticsSnapshot(
            session_id=SID,
            id="analytics",
            payload=AnalyticsPayload(
                speakers=[SpeakerStats(speaker_id="spk_0", talk_time_s=2.0, talk_ratio=1.0)],
                turn_count=1,
                turns_final=True,
            ),
        ),
        Done(
            session_id=SID,
            id="done",
            payload=DonePayload(duration_s=2.0, segments=2, model="tiny.en"),
        ),
    ]


EXPECTED_CALLS = [
    ("ready", 16000),
    ("partial", "hel"),
    ("partial", "hello wor"),
    ("final", "hello world"),
    ("error", "gap", True),
    ("final", "again"),
    ("turn", "hello world again"),
    ("semantic", ["hello"]),
    ("analytics", 1),
    ("done", 2),
]


class SyncRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def on_ready(self, payload: ReadyPayload) -> None:
        self.calls.append(("ready", payload.config.sample_rate))

    def on_partial_segment(self, segment: Segment) -> None:
        self.calls.append(("partial", segment.text))

    def on_segment_finalized(self, segment: Segment) -> None:
        self.calls.append(("final", segment.text))

    def on_speaker_turn(self, turn: Turn) -> None:
        self.calls.append(("turn", turn.text))

    def on_semantic_update(self, annotation: SemanticAnnotation) -> None:
        self.calls.append(("semantic", annotation.keywords))

    def on_analytics(self, snapshot: AnalyticsPayload) -> None:
        self.calls.append(("analytics", snapshot.turn_count))

    def on_error(self, error: ErrorPayload, recoverable: bool) -> None:
        self.calls.append(("error", error.code, recoverable))

    def on_done(self, payload: DonePayload) -> None:
        self.calls.append(("done", payload.segments))


class AsyncRecorder(SyncRecorder):
    """Same callbacks, async: each yields to the loop before recording."""

    async def on_partial_segment(self, segment: Segment) -> None:  # type: ignore[override]
        await asyncio.sleep(0.01)
        super().on_partial_segment(segment)

    async def on_segment_finalized(self, segment: Segment) -> None:  # type: ignore[override]
        await asyncio.sleep(0.01)
        super().on_segment_finalized(segment)

    async def on_done(self, payload: DonePayload) -> None:  # type: ignore[override]
        await asyncio.sleep(0.01)
        super().on_done(payload)


async def publish_all(bus: Bus, events: list[Event]) -> None:
    for event in events:
        assert (await bus.publish(event)).published


@pytest.mark.parametrize("recorder_class", [SyncRecorder, AsyncRecorder])
async def test_run_dispatches_every_event_in_seq_order(bus: Bus, recorder_class) -> None:
    await publish_all(bus, conversation())
    recorder = recorder_class()
    transcript = await Subscriber(bus.redis, SID, block_ms=100).run(recorder)
    assert recorder.calls == EXPECTED_CALLS
    assert transcript.text == "hello world again"
    assert [(s.id, s.partial) for s in transcript.segments] == [("seg-0", False), ("seg-1", False)]
    assert transcript.turns[0].text == "hello world again"
    assert transcript.annotations[0].keywords == ["hello"]
    assert transcript.speakers[0].talk_ratio == 1.0
    assert [e.code for e in transcript.meta.errors] == ["gap"]
    assert transcript.meta.complete and transcript.meta.duration_s == 2.0
    assert transcript.meta.stream.seq == 10 and transcript.meta.stream.session_id == SID


async def test_missing_callbacks_are_no_ops(bus: Bus) -> None:
    await publish_all(bus, conversation())

    class OnlyFinals:
        def __init__(self) -> None:
            self.texts: list[str] = []

        def on_segment_finalized(self, segment: Segment) -> None:
            self.texts.append(segment.text)

    only = OnlyFinals()
    await Subscriber(bus.redis, SID, block_ms=100).run(only)
    assert only.texts == ["hello world", "again"]
    await Subscriber(bus.redis, SID, block_ms=100).run(object())  # nothing to call: fine


async def test_following_waits_for_new_events_and_stops_at_done(bus: Bus) -> None:
    events = conversation()
    subscriber = Subscriber(bus.redis, SID, block_ms=100)
    recorder = SyncRecorder()
    running = asyncio.create_task(subscriber.run(recorder))
    await publish_all(bus, events[:4])
    await asyncio.sleep(0.4)
    assert not running.done()  # no `done` yet: it keeps following
    assert [c[0] for c in recorder.calls] == ["ready", "partial", "partial", "final"]
    assert not subscriber.transcript().meta.complete
    assert subscriber.transcript().text == "hello world"  # the transcript so far
    await publish_all(bus, events[4:])
    transcript = await asyncio.wait_for(running, timeout=5)
    assert recorder.calls == EXPECTED_CALLS
    assert transcript.meta.complete and subscriber.done is not None
    # `done` is the end: events after it (the bus refuses them anyway) are never awaited.
    assert [e async for e in subscriber] == []


async def test_following_rides_out_a_redis_restart(bus: Bus, redis_server: RealRedis) -> None:
    """Redis SIGKILLed and restarted (AOF) mid-follow: the subscriber resumes after the
    last event it read, so every event arrives once and in order."""
    events = conversation()
    subscriber = Subscriber(bus.redis, SID, block_ms=100)
    recorder = SyncRecorder()
    running = asyncio.create_task(subscriber.run(recorder))
    await publish_all(bus, events[:4])
    await asyncio.sleep(0.5)
    assert len(recorder.calls) == 4
    redis_server.stop(kill=True)
    await asyncio.sleep(1.0)  # reads fail meanwhile
    assert not running.done()
    redis_server.start()
    await publish_all(bus, events[4:])
    await asyncio.wait_for(running, timeout=10)
    assert recorder.calls == EXPECTED_CALLS


async def test_a_lasting_outage_is_raised_after_the_wait(bus: Bus, redis_server: RealRedis) -> None:
    subscriber = Subscriber(bus.redis, SID, block_ms=100, outage_wait_s=1.0)
    running = asyncio.create_task(subscriber.run(SyncRecorder()))
    await publish_all(bus, conversation()[:2])
    await asyncio.sleep(0.3)
    redis_server.stop(kill=True)
    with pytest.raises(REDIS_UNAVAILABLE):
        await asyncio.wait_for(running, timeout=10)


async def test_iteration_from_a_seq_and_without_follow(bus: Bus) -> None:
    events = conversation()
    await publish_all(bus, events[:6])
    snapshot = Subscriber(bus.redis, SID, follow=False)
    assert [e.seq async for e in snapshot] == [1, 2, 3, 4, 5, 6]  # returns at the end
    await publish_all(bus, events[6:8])
    assert [e.seq async for e in snapshot] == [7, 8]  # iterating again continues
    late = Subscriber(bus.redis, SID, from_seq=4, follow=False)
    assert [type(e).__name__ async for e in late] == [
        "SegmentFinalized", "Error", "SegmentFinalized", "TurnUpdated", "SemanticUpdate",
    ]  # fmt: skip
    assert late.transcript().text == "hello world again"


async def test_read_transcript_now_or_when_done(bus: Bus) -> None:
    events = conversation()
    await publish_all(bus, events[:3])
    now = await read_transcript(bus.redis, SID)
    assert now.text == "" and [s.text for s in now.segments] == ["hello wor"]
    assert now.segments[0].partial and not now.meta.complete
    with pytest.raises(TimeoutError):
        await read_transcript(bus.redis, SID, wait=True, timeout_s=0.3, block_ms=100)
    later = asyncio.create_task(read_transcript(bus.redis, SID, wait=True, timeout_s=5))
    await publish_all(bus, events[3:])
    assert (await later).meta.complete


async def test_wait_for_done_blocks_outside_an_event_loop(bus: Bus, settings: Settings) -> None:
    await publish_all(bus, conversation())
    transcript = await asyncio.to_thread(wait_for_done, settings.bus.redis_url, SID, 5)
    assert transcript.text == "hello world again" and transcript.meta.complete
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(wait_for_done, settings.bus.redis_url, "other", 0.3)
    with pytest.raises(RuntimeError, match="read_transcript"):
        wait_for_done(settings.bus.redis_url, SID, 1)
