"""The shared worker loop against real Redis, with a small stage that echoes its inbox."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from shared import keys
from shared.bus import Bus
from shared.schemas import Done, Segment, SegmentFinalized, decode_event
from shared.settings import Settings
from shared.worker import SessionLease, Worker


class EchoStage:
    """Publishes one final per inbox message, checkpointing the inbox position with it."""

    stage = "echo"

    async def prepare(self) -> None:
        return None

    def summary(self, checkpoint: dict[str, Any] | None) -> dict[str, Any]:
        return {}

    async def run_session(self, lease: SessionLease) -> None:
        last = (await lease.load_checkpoint() or {}).get("last", "0-0")
        redis = lease.bus.redis
        while True:
            reply = await redis.xread({keys.inbox(lease.session_id): last}, count=10, block=200)
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    if fields[b"type"] == b"stop":
                        return
                    seg = Segment(
                        id=last, start=0, end=0, text=fields[b"type"].decode(), partial=False
                    )
                    event = SegmentFinalized(session_id=lease.session_id, id=last, payload=seg)
                    await lease.publish(event, checkpoint={"last": last})


async def test_worker_finishes_session_and_skips_invalid_registry_ids(
    bus: Bus, settings: Settings
) -> None:
    settings = settings.with_overrides(pipeline=("echo",))
    redis = bus.redis
    await redis.xadd(keys.registry(), {"session_id": "bad{id}"})
    await bus.register_session("good")
    for kind in ("media", "media", "stop"):
        await redis.xadd(keys.inbox("good"), {"type": kind})
    stop = asyncio.Event()
    worker = Worker(EchoStage(), bus, settings)
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(20):
            await _until(lambda: bus.is_closed("good"))
            await _until(_nothing_pending(redis))
    finally:
        stop.set()
        await task
    types = [f[b"type"] for _id, f in await redis.xrange(keys.events("good"))]
    assert types == [b"segment_finalized", b"segment_finalized", b"done"]


async def _until(check) -> None:  # type: ignore[no-untyped-def]
    """Poll an async predicate (the loop's state lives in Redis, not in an Event)."""
    while not await check():  # noqa: ASYNC110 - the state polled lives in Redis
        await asyncio.sleep(0.05)


def _nothing_pending(redis):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return not (await redis.xpending(keys.registry(), "echo"))["pending"]

    return check


async def test_worker_trims_the_registry_it_is_done_with(
    bus: Bus, settings: Settings, monkeypatch: Any
) -> None:
    monkeypatch.setattr("shared.worker._HOUSEKEEPING_INTERVAL_S", 0.0)  # housekeeping every loop
    settings = settings.with_overrides(pipeline=("echo",))
    redis = bus.redis
    for sid in ("s1", "s2", "s3"):
        await bus.register_session(sid)
        await redis.xadd(keys.inbox(sid), {"type": "stop"})
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(EchoStage(), bus, settings).run(stop))
    try:
        async with asyncio.timeout(20):
            await _until(lambda: bus.is_closed("s3"))
            await _until(_nothing_pending(redis))
            # The last delivered entry stays; the two before it are released.
            await _until(_registry_length(redis, 1))
    finally:
        stop.set()
        await task
    (_, fields), *_ = await redis.xrange(keys.registry())
    assert fields[b"session_id"] == b"s3"


def _registry_length(redis, length: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return bool(await redis.xlen(keys.registry()) == length)

    return check


async def test_done_comes_without_a_dead_stage_after_the_done_timeout(
    bus: Bus, settings: Settings
) -> None:
    """enrich's worker is down: semantic finishes, waits `done_timeout_s` for it, then
    publishes `done` naming it unfinished; transcription and turns are all there."""
    from services.semantic.worker import SemanticHandler

    settings = settings.with_overrides(
        pipeline=("asr", "enrich", "semantic"), bus__done_timeout_s=1.5
    )
    sid = "enrich-down"
    await bus.register_session(sid)
    seg = Segment(
        id="seg-0-0", start=0.0, end=1.0, text="hello there", partial=False, speaker_id="spk_0"
    )
    await bus.publish(SegmentFinalized(session_id=sid, id=seg.id, stage="asr", payload=seg))
    await bus.mark_finished(sid, "asr")
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(SemanticHandler(settings), bus, settings).run(stop))
    try:
        async with asyncio.timeout(20):
            await _until(_finished(bus, sid, "semantic"))
            assert not await bus.is_closed(sid), "waits for enrich first"
            await _until(lambda: bus.is_closed(sid))
    finally:
        stop.set()
        await task
    events = [decode_event(f[b"data"]) for _id, f in await bus.redis.xrange(keys.events(sid))]
    done = events[-1]
    assert isinstance(done, Done)
    assert done.payload.unfinished == ["enrich"]
    assert done.payload.counts["turn_updated"] >= 1
    assert [type(e).__name__ for e in events].count("Done") == 1


def _finished(bus: Bus, sid: str, stage: str):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return stage in await bus.finished_stages(sid)

    return check


class CountingStage(EchoStage):
    """EchoStage that counts how many times it ran a session (once per lease)."""

    runs: ClassVar[dict[str, int]] = {}

    async def run_session(self, lease: SessionLease) -> None:
        self.runs[lease.session_id] = self.runs.get(lease.session_id, 0) + 1
        await super().run_session(lease)


async def test_a_session_registered_twice_is_processed_once(bus: Bus, settings: Settings) -> None:
    """Two registry entries for one session gave two leases that fenced each other."""
    settings = settings.with_overrides(pipeline=("echo",))
    redis = bus.redis
    first = await bus.register_session("twice")
    await bus.register_session("twice")
    for kind in ("media", "stop"):
        await redis.xadd(keys.inbox("twice"), {"type": kind})
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(CountingStage(), bus, settings).run(stop))
    try:
        async with asyncio.timeout(20):
            await _until(lambda: bus.is_closed("twice"))
            await _until(_nothing_pending(redis))
    finally:
        stop.set()
        await task
    assert CountingStage.runs == {"twice": 1}
    assert await redis.get(keys.registration("twice")) == first
    assert await redis.ttl(keys.registration("twice")) > 0
