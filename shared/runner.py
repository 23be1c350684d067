"""Run one stage as a process: settings in, signals, health endpoint, the worker loop."""

from __future__ import annotations

import asyncio
import signal

import structlog

from shared import stages
from shared.bus import Bus, connect
from shared.health import HealthServer
from shared.logging import configure_logging
from shared.settings import Settings
from shared.worker import StageHandler, Worker

log = structlog.get_logger("streamscribe.runner")


def make_handler(stage: str, settings: Settings) -> StageHandler:
    """The handler of installed stage `stage` (UnknownStage if none provides it)."""
    return stages.get_spec(stage).make_handler(settings)


async def serve_stage(handler: StageHandler, settings: Settings, stop: asyncio.Event) -> None:
    """Run `handler` in the worker loop until `stop`; serves health if a port is set."""
    redis = connect(settings.bus)
    bus = Bus(redis, settings.bus)
    worker = Worker(handler, bus, settings)
    health = None
    if settings.serve.health_port:
        health = HealthServer(
            settings.serve.health_host, settings.serve.health_port, worker.live, worker.ready
        )
        port = await health.start()
        log.info("health_listening", port=port)
    try:
        await worker.run(stop)
    finally:
        if health is not None:
            await health.close()
        await redis.aclose()


def run_stage(stage: str, settings: Settings) -> None:
    """Blocking entry point: `streamscribe worker STAGE`. SIGTERM/SIGINT drain and exit."""
    configure_logging(settings.serve.log_level, settings.serve.log_json)
    handler = make_handler(stage, settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_stage(handler, settings, stop)

    asyncio.run(main())
