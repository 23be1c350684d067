"""What every request handler of one gateway process shares: Redis, settings, sessions, feeds."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from shared.protocol import Limits
from shared.settings import BusSettings
from streamscribe.gateway.fanout import FeedHub
from streamscribe.gateway.sessions import SessionStore
from streamscribe.gateway.settings import GatewaySettings


@dataclass
class GatewayContext:
    settings: GatewaySettings
    bus: BusSettings
    ingest: Limits
    redis: aioredis.Redis
    store: SessionStore
    hub: FeedHub

    @classmethod
    def build(
        cls,
        redis: aioredis.Redis,
        settings: GatewaySettings,
        bus: BusSettings,
        ingest: Limits,
    ) -> GatewayContext:
        return cls(
            settings=settings,
            bus=bus,
            ingest=ingest,
            redis=redis,
            store=SessionStore(redis, settings, ingest),
            hub=FeedHub(redis, buffer=settings.replay_buffer, block_ms=bus.block_ms),
        )
