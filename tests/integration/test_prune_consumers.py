"""Consumer pruning against real Redis: gone workers are forgotten, held sessions never."""

from __future__ import annotations

import asyncio

from shared import keys
from shared.bus import Bus


async def test_idle_consumers_without_sessions_are_deleted(bus: Bus) -> None:
    redis = bus.redis
    await bus.ensure_group("asr")
    for sid in ("a", "b", "c", "d"):
        await bus.register_session(sid)
    # "holder" works two sessions; "gone" finished (acked) the one it took, then died.
    await redis.xreadgroup("asr", "holder", {keys.registry(): ">"}, count=2)
    (_, ((done_id, _),)), *_ = await redis.xreadgroup(
        "asr", "gone", {keys.registry(): ">"}, count=1
    )
    await redis.xack(keys.registry(), "asr", done_id)
    await asyncio.sleep(0.15)
    # "live" finished one just now: not idle long enough.
    (_, ((live_id, _),)), *_ = await redis.xreadgroup(
        "asr", "live", {keys.registry(): ">"}, count=1
    )
    await redis.xack(keys.registry(), "asr", live_id)

    assert await bus.prune_consumers("asr", min_idle_ms=100) == ["gone"]
    consumers = {
        c["name"]: c["pending"] for c in await redis.xinfo_consumers(keys.registry(), "asr")
    }
    assert consumers == {b"holder": 2, b"live": 0}
    # The held sessions are still pending for their owner.
    assert (await redis.xpending(keys.registry(), "asr"))["pending"] == 2


async def test_nothing_to_prune_in_a_fresh_group(bus: Bus) -> None:
    await bus.ensure_group("ingest")
    assert await bus.prune_consumers("ingest", min_idle_ms=0) == []
