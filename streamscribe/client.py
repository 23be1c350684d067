"""Consumer SDK: follow a session's events, dispatch them to callbacks, rebuild the transcript."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any, Protocol

import redis.asyncio as aioredis

from shared import keys
from shared.bus import connect
from shared.consumer import OUTAGE_WAIT_S, TranscriptReducer, read_events
from shared.context_window import DEFAULT_MAX_SECONDS, DEFAULT_MAX_TURNS, render_context
from shared.schemas import (
    AnalyticsPayload,
    AnalyticsSnapshot,
    Done,
    DonePayload,
    EnrichmentPayload,
    Error,
    ErrorPayload,
    Event,
    PartialSegment,
    Ready,
    ReadyPayload,
    Segment,
    SegmentEnriched,
    SegmentFinalized,
    SemanticAnnotation,
    SemanticUpdate,
    Transcript,
    Turn,
    TurnUpdated,
)
from shared.settings import BusSettings


class StreamCallbacks(Protocol):
    """What `Subscriber.run` calls. Every method is optional and may be sync or async.

    Implement only the ones you need on any object; a missing method is a no-op.
    """

    def on_ready(self, payload: ReadyPayload) -> Any: ...
    def on_partial_segment(self, segment: Segment) -> Any: ...
    def on_segment_finalized(self, segment: Segment) -> Any: ...
    def on_segment_enriched(self, payload: EnrichmentPayload) -> Any: ...
    def on_speaker_turn(self, turn: Turn) -> Any: ...
    def on_semantic_update(self, annotation: SemanticAnnotation) -> Any: ...
    def on_analytics(self, snapshot: AnalyticsPayload) -> Any: ...
    def on_error(self, error: ErrorPayload, recoverable: bool) -> Any: ...
    def on_done(self, payload: DonePayload) -> Any: ...


class Subscriber:
    """One session's events in seq order, each applied to a TranscriptReducer first.

    Iterating yields only events that changed the state (a repeated or older revision is
    skipped), so nothing reaches a consumer twice. With `follow`, iteration waits for new
    events and ends after `done`; without it, it ends at the current end of the stream.
    Iterating again continues after the last event seen. When Redis becomes unreachable
    mid-read (a restart, a failover), reading resumes where it stopped once Redis is
    back; after `outage_wait_s` seconds of outage the connection error is raised.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        session_id: str,
        *,
        from_seq: int = 1,
        follow: bool = True,
        block_ms: int = 1000,
        outage_wait_s: float = OUTAGE_WAIT_S,
        session_wait_s: float | None = None,
    ) -> None:
        self.redis = redis
        # When following, a session not created yet is waited for this long (default
        # 60 s), then UnknownSession is raised.
        self.session_wait_s = session_wait_s
        self.session_id = keys.check_session_id(session_id)
        self.follow = follow
        self.block_ms = block_ms
        self.outage_wait_s = outage_wait_s
        self.next_seq = max(from_seq, 1)
        # From a later seq the reducer only sees part of the session: a partial transcript.
        self.reducer = TranscriptReducer(session_id)

    @property
    def done(self) -> DonePayload | None:
        """The `done` payload once it has been read."""
        return self.reducer.done

    def transcript(self) -> Transcript:
        """Transcript v2 of everything applied so far (`meta.complete` once `done`)."""
        return self.reducer.snapshot()

    def context(
        self, *, max_turns: int = DEFAULT_MAX_TURNS, max_seconds: float = DEFAULT_MAX_SECONDS
    ) -> str:
        """The LLM-ready context window of the turns so far: `[12.3s] spk_0: text` lines,
        the last `max_turns` turns ending within `max_seconds` of the newest (an open,
        still partial turn included with its text so far)."""
        return render_context(
            list(self.reducer.turns.values()), max_turns=max_turns, max_seconds=max_seconds
        )

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events()

    async def events(self) -> AsyncIterator[Event]:
        if self.done is not None:
            return
        async for event in read_events(
            self.redis,
            self.session_id,
            from_seq=self.next_seq,
            follow=self.follow,
            block_ms=self.block_ms,
            outage_wait_s=self.outage_wait_s,
            session_wait_s=self.session_wait_s,
        ):
            self.next_seq = event.seq + 1
            if self.reducer.apply(event):
                yield event

    async def run(self, callbacks: object) -> Transcript:
        """Dispatch every event to `callbacks` (see StreamCallbacks); returns the transcript.

        A callback that raises stops the run and the exception propagates.
        """
        async for event in self:
            await dispatch(callbacks, event)
        return self.transcript()


async def dispatch(callbacks: object, event: Event) -> None:
    """Call the StreamCallbacks method for `event` on `callbacks`, if it has one."""
    match event:
        case Ready():
            await _invoke(callbacks, "on_ready", event.payload)
        case PartialSegment():
            await _invoke(callbacks, "on_partial_segment", event.payload)
        case SegmentFinalized():
            await _invoke(callbacks, "on_segment_finalized", event.payload)
        case SegmentEnriched():
            await _invoke(callbacks, "on_segment_enriched", event.payload)
        case TurnUpdated():
            await _invoke(callbacks, "on_speaker_turn", event.payload)
        case SemanticUpdate():
            await _invoke(callbacks, "on_semantic_update", event.payload)
        case AnalyticsSnapshot():
            await _invoke(callbacks, "on_analytics", event.payload)
        case Error():
            await _invoke(callbacks, "on_error", event.payload, event.payload.recoverable)
        case Done():
            await _invoke(callbacks, "on_done", event.payload)


async def _invoke(callbacks: object, name: str, *args: object) -> None:
    method = getattr(callbacks, name, None)
    if method is None:
        return
    result = method(*args)
    if inspect.isawaitable(result):
        await result


async def read_transcript(
    redis: aioredis.Redis,
    session_id: str,
    *,
    wait: bool = False,
    timeout_s: float | None = None,
    block_ms: int = 1000,
) -> Transcript:
    """The session's transcript now, or (with `wait`) once `done` arrives.

    Raises TimeoutError when `done` has not arrived within `timeout_s`.
    """
    subscriber = Subscriber(redis, session_id, follow=wait, block_ms=block_ms)

    async def drain() -> None:
        async for _event in subscriber:
            pass

    async with asyncio.timeout(timeout_s):
        await drain()
    return subscriber.transcript()


def wait_for_done(redis_url: str, session_id: str, timeout_s: float | None = None) -> Transcript:
    """Blocking: connect, wait for the session's `done`, return its Transcript.

    For scripts and notebooks without an event loop; raises TimeoutError after
    `timeout_s`.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("wait_for_done blocks; inside an event loop use read_transcript")

    async def main() -> Transcript:
        client = connect(BusSettings(redis_url=redis_url))
        try:
            return await read_transcript(client, session_id, wait=True, timeout_s=timeout_s)
        finally:
            await client.aclose()

    return asyncio.run(main())
