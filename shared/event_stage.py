"""The session loop of an event-driven stage, on the event cursor: exactly once by checkpoint.

A stage plugs in a `SessionProcessor` per session (its pure core plus whatever I/O the
core needs, such as reading audio). The loop feeds it the events it wants in seq order
and publishes what each one produced with a checkpoint `{"seq", "state", "summary"}`
saved atomically with the last of them. After a takeover the processor is rebuilt from
`state` and the cursor resumes after `seq`: what the dead owner already published is
re-derived identically and dropped by the publish script, nothing is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

import structlog

from shared.event_cursor import EventCursor, FollowedEvent
from shared.schemas import Event
from shared.worker import SessionLease

log = structlog.get_logger("streamscribe.event_stage")


class SessionProcessor(Protocol):
    """One session's state in an event-driven stage."""

    async def on_event(self, followed: FollowedEvent) -> list[Event]:
        """The events to publish for one input event (deterministic given the state)."""

    async def finish(self) -> list[Event]:
        """The events to publish once the upstream stages are done with the session."""

    def state(self) -> dict[str, Any]:
        """JSON-serializable state from which the processor is rebuilt after a takeover."""


class ProcessorFactory(Protocol):
    async def __call__(
        self, lease: SessionLease, state: Mapping[str, Any] | None
    ) -> SessionProcessor: ...


async def follow_session(
    lease: SessionLease,
    *,
    types: Collection[str],
    upstream: Sequence[str],
    pipeline: Sequence[str],
    make_processor: ProcessorFactory,
    block_ms: int = 1000,
) -> None:
    """Run one session of an event-driven stage from its checkpoint to its end."""
    checkpoint = await lease.load_checkpoint() or {}
    if checkpoint.get("finished"):
        return
    processor = await make_processor(lease, checkpoint.get("state"))
    processing_s = float(checkpoint.get("summary", {}).get("processing_s", 0.0))
    # Upstream stages not deployed in this pipeline never finish anything: not waited for.
    waited_for = [s for s in upstream if s in pipeline]
    cursor = EventCursor(
        lease.bus,
        lease.session_id,
        types=types,
        upstream=waited_for,
        after_seq=int(checkpoint.get("seq", 0)),
        block_ms=block_ms,
    )

    def saved(seq: int, *, finished: bool = False) -> dict[str, Any]:
        return {
            "seq": seq,
            "state": processor.state(),
            "summary": {"processing_s": round(processing_s, 4)},
            "finished": finished,
        }

    async for batch in cursor.batches():
        for followed in batch:
            started = time.perf_counter()
            events = await processor.on_event(followed)
            processing_s += time.perf_counter() - started
            await lease.publish_batch(events, saved(followed.seq))
    started = time.perf_counter()
    events = await processor.finish()
    processing_s += time.perf_counter() - started
    await lease.publish_batch(events, saved(cursor.position, finished=True))
    log.debug("event_stage_finished", session_id=lease.session_id, stage=lease.stage)
