"""One Redis reader per session per gateway process, fanned out to every client's outbox.

A client joins at any seq: from the feed's replay buffer when it is recent enough,
otherwise it first catches up with range reads of its own. Joining happens without an
await between copying the buffer and registering, so no event falls between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import redis.asyncio as aioredis
import structlog

from shared import keys
from shared.bus import xrange
from shared.consumer import read_event_json
from streamscribe.gateway import metrics
from streamscribe.gateway.messages import CLOSE_INTERNAL, Outgoing, error, event_message
from streamscribe.gateway.outbox import Outbox

log = structlog.get_logger("streamscribe.gateway.fanout")

_CATCH_UP_BATCH = 500


class SessionFeed:
    """Follows one session's events from `start_seq` and hands each to its subscribers."""

    def __init__(
        self, hub: FeedHub, session_id: str, start_seq: int, buffer: int, block_ms: int
    ) -> None:
        self.hub = hub
        self.session_id = session_id
        self.next_seq = start_seq
        self.ring: deque[Outgoing] = deque(maxlen=buffer)
        # outbox -> the first seq it wants
        self.subscribers: dict[Outbox, int] = {}
        self.finished = False
        self._block_ms = block_ms
        self.task = asyncio.create_task(self._run(start_seq), name=f"feed-{session_id}")
        hub.tasks.add(self.task)
        self.task.add_done_callback(hub.tasks.discard)

    @property
    def first_seq(self) -> int:
        """The oldest seq this feed can still hand out without a Redis read."""
        if self.ring and self.ring[0].seq is not None:
            return self.ring[0].seq
        return self.next_seq

    def join(self, outbox: Outbox, from_seq: int) -> None:
        """Copy buffered messages from `from_seq` into `outbox` and follow live ones."""
        for message in self.ring:
            if message.seq is not None and message.seq >= from_seq:
                outbox.put(message)
        self.subscribers[outbox] = from_seq

    def leave(self, outbox: Outbox) -> None:
        self.subscribers.pop(outbox, None)
        if not self.subscribers and not self.finished:
            # Nobody listens: free the blocking read (a later client starts a new feed).
            self.finished = True
            self.task.cancel()
            self.hub.forget(self)

    async def _run(self, start_seq: int) -> None:
        try:
            async for raw in read_event_json(
                self.hub.redis,
                self.session_id,
                from_seq=start_seq,
                follow=True,
                block_ms=self._block_ms,
            ):
                message = event_message(raw)
                self.ring.append(message)
                self.next_seq = (message.seq or self.next_seq) + 1
                for outbox, wanted in list(self.subscribers.items()):
                    wants = message.seq is not None and message.seq >= wanted
                    if wants and not outbox.put(message):
                        self.subscribers.pop(outbox, None)
                metrics.EVENTS_FANNED_OUT.inc(len(self.subscribers))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis gone longer than the outage wait, a bad event
            log.warning("feed_failed", session_id=self.session_id, error=repr(exc))
            failure = error(
                "feed_failed",
                f"reading the session's events failed: {exc}; resume from the last seq",
                recoverable=True,
                close_code=CLOSE_INTERNAL,
            )
            for outbox in self.subscribers:
                outbox.close_with(failure)
        finally:
            self.finished = True
            self.hub.forget(self)


class FeedHub:
    """The session feeds of this process."""

    def __init__(self, redis: aioredis.Redis, *, buffer: int, block_ms: int) -> None:
        self.redis = redis
        self.buffer = buffer
        self.block_ms = block_ms
        self.feeds: dict[str, SessionFeed] = {}
        # Every feed task still running, also those already let go of, so close() can
        # wait for their cancellation before the event loop ends.
        self.tasks: set[asyncio.Task[None]] = set()

    def forget(self, feed: SessionFeed) -> None:
        if self.feeds.get(feed.session_id) is feed:
            del self.feeds[feed.session_id]

    async def subscribe(self, session_id: str, from_seq: int, outbox: Outbox) -> SessionFeed | None:
        """Deliver the session's events from `from_seq` on into `outbox`, then live ones.

        Returns the feed joined (pass it to `unsubscribe`), or None when the outbox gave up
        during catch-up.
        """
        next_seq = max(1, from_seq)
        while True:
            feed = self.feeds.get(session_id)
            if feed is None or feed.finished:
                feed = SessionFeed(self, session_id, next_seq, self.buffer, self.block_ms)
                self.feeds[session_id] = feed
            if next_seq >= feed.first_seq:
                feed.join(outbox, next_seq)
                return feed
            # Older than the buffer: read up to it ourselves, then try to join again.
            entries = await xrange(
                self.redis, keys.events(session_id), min=f"{next_seq}-0", count=_CATCH_UP_BATCH
            )
            if not entries:
                # The feed started past the stream's end (a client resumed at a seq not
                # yet published); wait for the events in between to appear.
                await asyncio.sleep(self.block_ms / 1000)
                continue
            for _entry_id, fields in entries:
                message = event_message(fields[b"data"])
                if message.seq is not None and message.seq >= feed.first_seq:
                    break
                if not outbox.put(message):
                    return None
                next_seq = (message.seq or next_seq) + 1

    def unsubscribe(self, feed: SessionFeed | None, outbox: Outbox) -> None:
        if feed is not None:
            feed.leave(outbox)

    async def close(self) -> None:
        for feed in self.feeds.values():
            feed.finished = True
        self.feeds.clear()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
