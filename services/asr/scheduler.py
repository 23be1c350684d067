"""Decode slots shared by every session of a worker: finals first, and never behind partials."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

FINAL_PRIORITY = 0
PARTIAL_PRIORITY = 1


class DecodeScheduler:
    """`slots` decodes run at once; partials may hold all but one of them.

    With two or more slots, one is always free of partials, so a final-quality decode
    (a final, a cap cut, the decode at a pause) never waits for a partial to finish:
    it waits only for other final-quality decodes. A partial starts only while no
    final-quality decode runs. With one slot, finals still go before waiting partials
    but wait for a running one.

    A session builds its request only once it holds a slot, so a partial that waited
    decodes the newest audio instead of a stale copy: under load, partials coalesce.
    """

    def __init__(self, slots: int = 1) -> None:
        self.slots = max(1, slots)
        self.partial_limit = max(1, self.slots - 1)
        self._running = {FINAL_PRIORITY: 0, PARTIAL_PRIORITY: 0}
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release(priority)

    def _can_start(self, priority: int) -> bool:
        if self.running >= self.slots:
            return False
        if priority == FINAL_PRIORITY:
            return True
        # Nor does a partial start beside a running final: on a loaded machine it would
        # take CPU from the final, whose latency is what counts. Partials coalesce.
        return self._running[FINAL_PRIORITY] == 0 and self._running[priority] < self.partial_limit

    async def _acquire(self, priority: int) -> None:
        if self._can_start(priority) and not any(
            p <= priority and not f.done() for p, _, f in self._waiters
        ):
            self._running[priority] += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(priority)  # a slot was handed to us just as we were cancelled
            raise

    def _release(self, priority: int) -> None:
        self._running[priority] -= 1
        self._grant()

    def _grant(self) -> None:
        """Hand free slots to waiters in priority order.

        The heap yields every final before any partial, so once the first waiter cannot
        start, none behind it can either.
        """
        while self._waiters and self._can_start(self._waiters[0][0]):
            priority, _, future = heapq.heappop(self._waiters)
            if future.done():
                continue  # cancelled while waiting
            self._running[priority] += 1
            future.set_result(None)

    @property
    def waiting(self) -> int:
        return sum(1 for *_, f in self._waiters if not f.done())

    @property
    def running(self) -> int:
        return sum(self._running.values())
