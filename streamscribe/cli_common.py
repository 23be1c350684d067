"""What every CLI command shares: exit codes, one-line errors, reaching Redis, writing JSON."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import redis.asyncio as aioredis

from shared.bus import connect
from shared.schemas import Transcript, encode
from shared.settings import Settings
from streamscribe.connection import check_reachable

EXIT_ERROR = 1
EXIT_USAGE = 2  # bad arguments, unreadable file, unknown session (argparse uses 2 too)
EXIT_REDIS = 3  # Redis did not answer
EXIT_TIMEOUT = 4  # --wait/--timeout ran out before `done`
EXIT_INTERRUPTED = 130

# A command: parsed arguments, the settings built at the edge, and the Redis URL the user
# named (flag or environment), None when they named none (`up`/`demo` then embed one).
Command = Callable[[argparse.Namespace, Settings, str | None], int]


class CliError(Exception):
    """An expected failure: printed as one line, exits with `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@contextlib.asynccontextmanager
async def open_redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A client for settings.bus.redis_url; RedisUnreachable at once if it does not answer."""
    client = connect(settings.bus)
    try:
        await check_reachable(client, settings.bus.redis_url)
        yield client
    finally:
        await client.aclose()


def write_transcript(transcript: Transcript, out: Path | None) -> None:
    """Transcript v2 JSON, indented, to `out` or stdout."""
    data = msgspec.json.format(encode(transcript), indent=2) + b"\n"
    if out is None:
        sys.stdout.write(data.decode())
        sys.stdout.flush()
    else:
        out.write_bytes(data)
