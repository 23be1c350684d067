"""The session loop of an event-driven stage, on the event cursor: exactly once by checkpoint.

A stage plugs in a `SessionProcessor` per session (its pure core plus whatever I/O the
core needs, such as reading audio). The loop feeds it the events it wants in seq order,
a batch at a time, and publishes what a batch produced with a checkpoint `{"seq",
"state", "summary", "finished"[, "resume_id"]}` saved atomically with the last of them.
After a takeover the processor is rebuilt from `state` and the cursor resumes after
`seq`: what the dead owner already published is re-derived identically and dropped by
the publish script, nothing is skipped.
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

    async def on_batch(self, batch: list[FollowedEvent]) -> list[Event]:
        """The events to publish for these input events, in order (deterministic given
        the state and the inputs; a batch may be processed together, e.g. one model call)."""

    async def finish(self) -> list[Event]:
        """The events to publish once the upstream stages are done with the session."""

    def state(self) -> dict[str, Any]:
        """JSON-serializable state from which the processor is rebuilt after a takeover."""

    def resume_id(self) -> str | None:
        """For a stage that reads the audio log: the oldest log entry it still needs (the
        log is trimmed below it); None for stages that do not read it."""


class ProcessorFactory(Protocol):
    async def __call__(
        self, lease: SessionLease, checkpoint: Mapping[str, Any]
    ) -> SessionProcessor:
        """The session's processor, rebuilt from its checkpoint (`{}` for a new session):
        `state` is what `state()` returned; the rest is the loop's bookkeeping."""


async def follow_session(
    lease: SessionLease,
    *,
    types: Collection[str],
    upstream: Sequence[str],
    pipeline: Sequence[str],
    make_processor: ProcessorFactory,
    block_ms: int = 1000,
    batch_size: int = 64,
) -> None:
    """Run one session of an event-driven stage from its checkpoint to its end.

    `batch_size` bounds the events (of any type) read per batch: what a crash may replay.
    """
    checkpoint = await lease.load_checkpoint() or {}
    if checkpoint.get("finished"):
        return
    processor = await make_processor(lease, checkpoint)
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
        batch=batch_size,
    )

    def saved(seq: int, *, finished: bool = False) -> dict[str, Any]:
        checkpoint: dict[str, Any] = {
            "seq": seq,
            "state": processor.state(),
            "summary": {"processing_s": round(processing_s, 4)},
            "finished": finished,
        }
        resume_id = processor.resume_id()
        if resume_id is not None:
            checkpoint["resume_id"] = resume_id  # read by shared/trim_audio.lua
        return checkpoint

    async for batch in cursor.batches():
        if not batch:
            continue
        started = time.perf_counter()
        events = await processor.on_batch(batch)
        processing_s += time.perf_counter() - started
        # The checkpoint (state after the whole batch) rides on the batch's last event:
        # a crash before it replays the batch, whose events are re-derived and dropped.
        await lease.publish_batch(events, saved(batch[-1].seq))
    started = time.perf_counter()
    events = await processor.finish()
    processing_s += time.perf_counter() - started
    await lease.publish_batch(events, saved(cursor.position, finished=True))
    log.debug("event_stage_finished", session_id=lease.session_id, stage=lease.stage)
