"""Shared fixtures: a real Redis server per test, bus objects, fixture audio."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from shared.bus import Bus, connect
from shared.settings import BusSettings, Settings
from tests.redis_harness import RealRedis, real_redis

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def redis_server() -> Iterator[RealRedis]:
    """A fresh real Redis (AOF on) that the test may kill and restart on the same port."""
    with real_redis() as server:
        yield server


@pytest.fixture
def settings(redis_server: RealRedis) -> Settings:
    return Settings(
        bus=BusSettings(
            redis_url=redis_server.url,
            block_ms=200,
            claim_min_idle_ms=1500,
            renew_interval_ms=300,
            socket_timeout_s=5.0,
        )
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = connect(settings.bus)
    yield client
    await client.aclose()


@pytest.fixture
async def bus(redis: aioredis.Redis, settings: Settings) -> Bus:
    return Bus(redis, settings.bus)


def fixture_reference(name: str) -> dict[str, object]:
    """The JSON sidecar (reference text, utterance times) of a committed fixture."""
    return json.loads((FIXTURES / f"{name}.json").read_text())
