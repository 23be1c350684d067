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

    def can_join(self, from_seq: int, outbox: Outbox) -> bool:
        """Whether the buffer holds everything from `from_seq` on and it fits the queue."""
        return from_seq >= self.first_seq and self.next_seq - from_seq <= outbox.room

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

        Events already in Redis are read at the client's pace (waiting for room in its
        queue); only live events are pushed. Returns the feed joined (pass it to
        `unsubscribe`), or None when the session had ended and everything was delivered,
        or the outbox gave up.
        """
        next_seq = max(1, from_seq)
        while True:
            feed = await self._feed(session_id, next_seq)
            # Join when the buffer holds everything from next_seq on and it fits in the
            # client's queue; joining copies it without waiting for the client.
            if feed is not None and feed.can_join(next_seq, outbox):
                feed.join(outbox, next_seq)
                return feed
            entries = await xrange(
                self.redis, keys.events(session_id), min=f"{next_seq}-0", count=_CATCH_UP_BATCH
            )
            if not entries:
                if feed is None:
                    return None  # ended, and all of it delivered
                # The client resumed at a seq not yet published: wait for it.
                await asyncio.sleep(self.block_ms / 1000)
                continue
            for _entry_id, fields in entries:
                message = event_message(fields[b"data"])
                if not await outbox.put_wait(message):
                    return None
                next_seq = (message.seq or next_seq) + 1
                if feed is not None and feed.can_join(next_seq, outbox):
                    break

    async def _feed(self, session_id: str, next_seq: int) -> SessionFeed | None:
        """The session's live feed, started at the stream's head if there is none; None
        for a session that has ended (it is read from Redis only)."""
        feed = self.feeds.get(session_id)
        if feed is not None and not feed.finished:
            return feed
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(keys.heads(session_id), "_seq")
        pipe.hexists(keys.heads(session_id), "_closed")
        raw_seq, closed = await pipe.execute()
        if closed:
            return None
        feed = self.feeds.get(session_id)  # another client may have started one meanwhile
        if feed is None or feed.finished:
            # At the head, not at this client's seq: what is already in Redis is read at
            # each client's own pace, so a backlog never floods a queue.
            head = int(raw_seq) if raw_seq else 0
            feed = SessionFeed(
                self, session_id, max(next_seq, head + 1), self.buffer, self.block_ms
            )
            self.feeds[session_id] = feed
        return feed

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
