"""Event-driven stages' primitive: follow a session's events from a checkpointed seq.

enrich and semantic consume the session's events (finals, turns), not its inbox. The
cursor reads the event stream after a seq, keeps the types the stage wants, and ends
once every upstream stage has finished the session and its events are all read, or
the session is closed. With `SessionLease.publish_batch`, a stage publishes what one
input produced together with a checkpoint naming that input's seq, so a takeover
resumes after the last input whose outputs are in the stream, and replayed outputs
(same ids and revisions, as the stage's core is deterministic) are dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass

from shared.bus import Bus
from shared.schemas import Event, decode_event


@dataclass(frozen=True, slots=True)
class FollowedEvent:
    """One event of the stream and its seq (the position a checkpoint names)."""

    seq: int
    event: Event


class EventCursor:
    """Reads one session's events of `types` after `after_seq`, in seq order.

    `position` is the seq of the last event read, of any type: a stage may checkpoint
    it once it has handled every event up to there.
    """

    def __init__(
        self,
        bus: Bus,
        session_id: str,
        *,
        types: Collection[str],
        upstream: Sequence[str],
        after_seq: int = 0,
        block_ms: int = 1000,
        batch: int = 256,
    ) -> None:
        self.bus = bus
        self.session_id = session_id
        self.types = frozenset(types)
        self.upstream = frozenset(upstream)
        self.position = after_seq
        self.block_ms = block_ms
        self.batch = batch

    async def batches(self) -> AsyncIterator[list[FollowedEvent]]:
        """Batches of the wanted events (possibly empty when only others were read),
        until the upstream stages finished and their events are all read."""
        while True:
            entries = await self.bus.events_after(self.session_id, self.position, count=self.batch)
            if entries:
                wanted: list[FollowedEvent] = []
                for entry_id, fields in entries:
                    seq = int(entry_id.split(b"-", 1)[0])
                    self.position = seq
                    if fields.get(b"type", b"").decode() in self.types:
                        wanted.append(FollowedEvent(seq, decode_event(fields[b"data"])))
                yield wanted
                continue
            if await self._upstream_done():
                # An upstream stage publishes its last events before it marks itself
                # finished, so one more read after seeing the mark sees them all.
                if not await self.bus.events_after(self.session_id, self.position, count=1):
                    return
                continue
            await self.bus.wait_for_events(self.session_id, self.position, self.block_ms)

    async def _upstream_done(self) -> bool:
        if await self.bus.is_closed(self.session_id):
            return True
        return self.upstream <= await self.bus.finished_stages(self.session_id)
