"""Decode slots shared by a worker's sessions: finals and partials never wait on each other."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

FINAL_PRIORITY = 0
PARTIAL_PRIORITY = 1


class DecodeScheduler:
    """Two pools: `slots` final-quality decodes at once, and `partial_slots` partials.

    Final-quality decodes (finals, cap cuts, the decode at a pause) and partials run on
    separate model replicas, the partials' at a low OS priority, so neither waits for
    the other: a final never queues behind a partial, and a partial never takes CPU a
    final wants. Within a pool, waiters are served in order.

    A session builds its request only once it holds a slot, so a partial that waited
    decodes the newest audio instead of a stale copy: under load, partials coalesce.
    """

    def __init__(self, slots: int = 1, partial_slots: int = 1) -> None:
        self.slots = max(1, slots)
        self.partial_slots = max(1, partial_slots)
        self._pools = {
            FINAL_PRIORITY: asyncio.Semaphore(self.slots),
            PARTIAL_PRIORITY: asyncio.Semaphore(self.partial_slots),
        }
        self._running = {FINAL_PRIORITY: 0, PARTIAL_PRIORITY: 0}

    @contextlib.asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        async with self._pools[priority]:
            self._running[priority] += 1
            try:
                yield
            finally:
                self._running[priority] -= 1

    def running(self, priority: int) -> int:
        return self._running[priority]
