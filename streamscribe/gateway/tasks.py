"""Ending a connection's helper tasks: cancel them all, then wait for each to stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel every task first (so none waits on another), then await each; their
    errors are the connection's to have logged already, not the closer's to re-raise."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
