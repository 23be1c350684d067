"""Consumer primitives: read a session's events from any seq, and rebuild state from them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import redis.asyncio as aioredis
import structlog

from shared import keys
from shared.bus import REDIS_UNAVAILABLE, xrange, xread
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
    Segment,
    SegmentEnriched,
    SegmentFinalized,
    SemanticAnnotation,
    SemanticUpdate,
    StreamMeta,
    Transcript,
    TranscriptMeta,
    Turn,
    TurnUpdated,
    decode_event,
    is_final,
)

log = structlog.get_logger("streamscribe.consumer")

# How long a reader waits out Redis being unreachable (a restart, a failover) before it
# gives up and raises, and how often it tries again meanwhile.
OUTAGE_WAIT_S = 30.0
_RETRY_EVERY_S = 0.5
# How long a following reader waits for a session that does not exist yet: consumers
# routinely subscribe before the producer starts.
SESSION_WAIT_S = 60.0
_SESSION_POLL_S = 0.2


class UnknownSession(LookupError):
    """No session with this id exists (and none appeared while waiting for it)."""


async def session_exists(redis: aioredis.Redis, session_id: str) -> bool:
    return bool(await redis.exists(keys.events(session_id), keys.inbox(session_id)))


async def wait_for_session(
    redis: aioredis.Redis,
    session_id: str,
    timeout_s: float,
    *,
    outage_wait_s: float = OUTAGE_WAIT_S,
) -> None:
    """Return once the session exists; UnknownSession after `timeout_s` (0: check once).

    A Redis outage meanwhile is waited out for up to `outage_wait_s`, then raised.
    """
    deadline = time.monotonic() + timeout_s
    down_since: float | None = None
    while True:
        try:
            if await session_exists(redis, session_id):
                return
            down_since = None
        except REDIS_UNAVAILABLE:
            now = time.monotonic()
            down_since = down_since or now
            if now - down_since >= outage_wait_s:
                raise
        if time.monotonic() >= deadline:
            waited = f" within {timeout_s:g} s" if timeout_s > 0 else ""
            raise UnknownSession(f"no session {session_id!r} exists{waited}")
        await asyncio.sleep(_SESSION_POLL_S)


async def read_event_json(
    redis: aioredis.Redis,
    session_id: str,
    *,
    from_seq: int = 1,
    follow: bool = False,
    block_ms: int = 1000,
    batch: int = 500,
    outage_wait_s: float = OUTAGE_WAIT_S,
    session_wait_s: float | None = None,
) -> AsyncIterator[bytes]:
    """Yield each event's JSON exactly as stored, in seq order; with `follow`, until `done`.

    When following, a session that does not exist yet is waited for up to
    `session_wait_s` (default 60 s), then UnknownSession is raised; without `follow`, an
    unknown session simply has no events.

    The stream entry id of an event is `<seq>-0`, so reading from a seq is a range read.
    The raw bytes keep fields a newer writer added that this version's schema lacks.
    When Redis becomes unreachable, reading resumes after the last event yielded once it
    is back, so nothing is skipped or repeated; after `outage_wait_s` of outage (0: at
    once) the error is raised.
    """
    if follow:
        wait_s = SESSION_WAIT_S if session_wait_s is None else session_wait_s
        await wait_for_session(redis, session_id, wait_s, outage_wait_s=outage_wait_s)
    stream = keys.events(session_id)
    lower = f"{max(from_seq, 1)}-0"
    last_id = f"{max(from_seq, 1) - 1}-0".encode()
    down_since: float | None = None
    while True:
        try:
            entries = await xrange(redis, stream, min=lower, count=batch)
        except REDIS_UNAVAILABLE as exc:
            now = time.monotonic()
            down_since = down_since or now
            if now - down_since >= outage_wait_s:
                raise
            if down_since == now:  # the outage's first failed read
                log.warning(
                    "redis_unavailable",
                    session_id=session_id,
                    error=str(exc),
                    retry_for_s=outage_wait_s,
                )
            await asyncio.sleep(_RETRY_EVERY_S)
            continue
        down_since = None
        for entry_id, fields in entries:
            last_id = entry_id
            yield fields[b"data"]
            if follow and fields.get(b"type") == b"done":
                return
        if entries:
            lower = "(" + last_id.decode()
            continue
        if not follow:
            return
        # Block shorter than the socket timeout, then loop. A failed wait is
        # the range read's to report: it runs next and waits the outage out.
        with contextlib.suppress(*REDIS_UNAVAILABLE):
            await xread(redis, {stream: last_id.decode()}, count=1, block=block_ms)


async def read_events(
    redis: aioredis.Redis,
    session_id: str,
    *,
    from_seq: int = 1,
    follow: bool = False,
    block_ms: int = 1000,
    batch: int = 500,
    outage_wait_s: float = OUTAGE_WAIT_S,
    session_wait_s: float | None = None,
) -> AsyncIterator[Event]:
    """Typed events of the session in seq order from `from_seq`; with `follow`, until `done`.

    Redis outages and a session that does not exist yet are waited for as in
    `read_event_json`.
    """
    async for data in read_event_json(
        redis,
        session_id,
        from_seq=from_seq,
        follow=follow,
        block_ms=block_ms,
        batch=batch,
        outage_wait_s=outage_wait_s,
        session_wait_s=session_wait_s,
    ):
        yield decode_event(data)


class TranscriptReducer:
    """Applies events in seq order; an event not newer per (id, revision) is a no-op.

    Applying any prefix of a stream twice leaves the same state as applying it once.
    """

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.seq = 0
        self.revisions: dict[str, int] = {}
        self.closed: set[str] = set()
        self.segments: dict[str, Segment] = {}
        self.turns: dict[str, Turn] = {}
        self.annotations: dict[str, SemanticAnnotation] = {}
        self.enrichment: dict[str, dict[str, Any]] = {}
        self.analytics: AnalyticsPayload | None = None
        self.errors: dict[str, ErrorPayload] = {}
        self.ready: Ready | None = None
        self.done: DonePayload | None = None
        self.start_at: float | None = None

    def apply(self, event: Event) -> bool:
        """Apply one event; returns False when it changed nothing (old or repeated)."""
        if event.id in self.closed or event.revision <= self.revisions.get(event.id, 0):
            return False
        self.revisions[event.id] = event.revision
        if is_final(event):
            self.closed.add(event.id)
        self.seq = max(self.seq, event.seq)
        match event:
            case Ready():
                self.ready = event
                self.start_at = event.emitted_at
            case PartialSegment() | SegmentFinalized():
                self.segments[event.payload.id] = event.payload
            case SegmentEnriched():
                self.enrichment[event.payload.segment_id] = event.payload.audio_state
            case TurnUpdated():
                self.turns[event.payload.id] = event.payload
            case SemanticUpdate():
                self.annotations[event.payload.turn.id] = event.payload
            case AnalyticsSnapshot():
                self.analytics = event.payload
            case Error():
                self.errors[event.id] = event.payload
            case Done():
                self.done = event.payload
        return True

    def final_segments(self) -> list[Segment]:
        return sorted(
            (s for s in self.segments.values() if not s.partial),
            key=lambda s: (s.start, s.channel or 0),
        )

    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.final_segments() if s.text.strip())

    def snapshot(self) -> Transcript:
        """A Transcript v2 of the current state; unfinished items carry `partial: true`."""
        segments = []
        for seg in sorted(self.segments.values(), key=lambda s: (s.start, s.channel or 0)):
            if not seg.text.strip() and not seg.partial:
                continue  # a final that closed a noise-only utterance carries no text
            state = self.enrichment.get(seg.id)
            segments.append(msgspec.structs.replace(seg, audio_state=state) if state else seg)
        config = self.ready.payload.config if self.ready else None
        features = msgspec.structs.asdict(config.features) if config else {}
        first_final = next((s for s in segments if s.asr is not None), None)
        return Transcript(
            text=self.text(),
            segments=segments,
            speakers=list(self.analytics.speakers) if self.analytics else [],
            turns=sorted(self.turns.values(), key=lambda t: t.start),
            annotations=list(self.annotations.values()),
            meta=TranscriptMeta(
                stream=StreamMeta(
                    session_id=self.session_id,
                    seq=self.seq,
                    start_at=self.start_at,
                    features=features,
                ),
                model=first_final.asr.model if first_final and first_final.asr else None,
                device=first_final.asr.device if first_final and first_final.asr else None,
                duration_s=self.done.duration_s if self.done else None,
                complete=self.done is not None,
                errors=list(self.errors.values()),
            ),
        )
