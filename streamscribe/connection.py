"""Reaching Redis from the SDK and CLI, with one clear error when it does not answer."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from shared.bus import REDIS_UNAVAILABLE, split_cluster_url
from shared.bus import connect as bus_connect
from shared.settings import BusSettings


def connect(url: str, *, socket_timeout_s: float = 10.0) -> aioredis.Redis:
    """An asyncio client for `url`, as the workers open it (bytes in, bytes out).

    `redis+cluster://HOST:PORT` (or `rediss+cluster://`) gives a Redis Cluster client.
    """
    return bus_connect(BusSettings(redis_url=url, socket_timeout_s=socket_timeout_s))


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
    except REDIS_UNAVAILABLE as exc:
        raise RedisUnreachable(url, exc) from exc


def check_reachable_sync(url: str, *, timeout_s: float = 3.0) -> None:
    """The blocking variant, for code outside an event loop (the supervisor).

    For a cluster URL it asks the seed node named, which is what every client starts from.
    """
    seed_url, _cluster = split_cluster_url(url)
    client = redis.Redis.from_url(
        seed_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        client.ping()
    except REDIS_UNAVAILABLE as exc:
        raise RedisUnreachable(url, exc) from exc
    finally:
        client.close()
