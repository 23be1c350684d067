"""Reaching Redis from the SDK and CLI, with one clear error when it does not answer."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What a Redis that is down, unreachable or too slow raises.
UNREACHABLE_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


class RedisUnreachable(ConnectionError):
    """Redis did not answer at `url`."""

    def __init__(self, url: str, reason: object) -> None:
        self.url = url
        self.reason = str(reason)
        super().__init__(f"cannot reach Redis at {url}: {self.reason}")


async def check_reachable(client: aioredis.Redis, url: str) -> None:
    """PING `client`; raise RedisUnreachable (naming `url`) when it does not answer."""
    try:
        await client.ping()
    except UNREACHABLE_ERRORS as exc:
        raise RedisUnreachable(url, exc) from exc


def check_reachable_sync(url: str, *, timeout_s: float = 3.0) -> None:
    """The blocking variant, for code outside an event loop (the supervisor)."""
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except UNREACHABLE_ERRORS as exc:
        raise RedisUnreachable(url, exc) from exc
    finally:
        client.close()
