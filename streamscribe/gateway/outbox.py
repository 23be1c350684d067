"""A client's bounded queue of outgoing messages: partials coalesce, nothing else is dropped."""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections import OrderedDict

from streamscribe.gateway.messages import CLOSE_TRY_AGAIN, Outgoing, error

# Every live outbox, for the queue-depth gauge (metrics.py).
LIVE: weakref.WeakSet[Outbox] = weakref.WeakSet()
_unique = itertools.count()


class Outbox:
    """FIFO of messages for one client, at most `limit` waiting.

    A partial replaces a partial of the same entity id still waiting (the newer revision
    wins, RFC "coalesce partials"), and a final removes it: the client skips superseded
    seqs but never sees seqs out of order. When `limit` messages that cannot be coalesced
    are waiting, the client is too slow for finals: the queue is dropped (the client
    resumes from its last seq) and a `slow_consumer` error that closes the connection is
    all that is left to send.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[object, Outgoing] = OrderedDict()
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self.failed = asyncio.Event()
        self.closing = False
        self.coalesced = 0
        LIVE.add(self)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: Outgoing) -> bool:
        """Queue `message`; False once the client is closing (overflow or a fatal error)."""
        if self.closing:
            return False
        superseded = ("p", message.entity_id)
        if message.entity_id is not None and superseded in self._items:
            del self._items[superseded]
            self.coalesced += 1
        if len(self._items) >= self.limit:
            self.fail(
                error(
                    "slow_consumer",
                    f"more than {self.limit} messages waited for this client; "
                    "resume from the last seq received",
                    recoverable=True,
                    close_code=CLOSE_TRY_AGAIN,
                )
            )
            return False
        key = ("p", message.entity_id) if message.coalescable else ("m", next(_unique))
        self._items[key] = message
        self._ready.set()
        return True

    @property
    def room(self) -> int:
        """Messages that can be queued before the client counts as too slow."""
        return max(0, self.limit - len(self._items))

    async def put_wait(self, message: Outgoing) -> bool:
        """Queue `message` once there is room: for catching up from Redis, which can wait
        for the client (live fan-out cannot, it uses `put`). False once closing."""
        while not self.closing and len(self._items) >= self.limit:
            self._space.clear()
            await self._space.wait()
        return self.put(message)

    def close_with(self, message: Outgoing) -> None:
        """Send what waits, then `message` (which carries a close code), then nothing."""
        if self.closing:
            return
        self._items[("m", next(_unique))] = message
        self.closing = True
        self._ready.set()

    def fail(self, message: Outgoing) -> None:
        """Drop what waits; `message` (with a close code) is the last thing sent."""
        self._items.clear()
        self._items[("m", next(_unique))] = message
        self.closing = True
        self.failed.set()
        self._ready.set()
        self._space.set()

    async def get(self) -> Outgoing:
        """The next message, waiting for one."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        _key, message = self._items.popitem(last=False)
        self._space.set()
        return message
