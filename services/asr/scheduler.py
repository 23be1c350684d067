"""One decode at a time per worker, finals before partials (partials coalesce while waiting)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

FINAL_PRIORITY = 0
PARTIAL_PRIORITY = 1


class DecodeScheduler:
    """A single decode slot shared by every session of a worker.

    The model already uses every core for one decode, so decodes run one at a time. A
    session builds its request only once it holds the slot, so a partial that waited
    decodes the newest audio instead of a stale copy: under load, partials coalesce.
    """

    def __init__(self) -> None:
        self._busy = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if not self._busy and not self._waiters:
            self._busy = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # the slot was handed to us just as we were cancelled
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # ownership passes directly; _busy stays True
                return
        self._busy = False

    @property
    def waiting(self) -> int:
        return sum(1 for *_, f in self._waiters if not f.done())
