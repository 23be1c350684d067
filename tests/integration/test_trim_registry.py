"""Registry trimming against real Redis: only what every stage's group is done with goes."""

from __future__ import annotations

from shared import keys
from shared.bus import Bus

PIPELINE = ("ingest", "asr")


async def _claim(bus: Bus, group: str, count: int, *, ack: bool) -> list[bytes]:
    response = await bus.redis.xreadgroup(group, "w1", {keys.registry(): ">"}, count=count)
    ids = [entry_id for _, entries in response for entry_id, _ in entries]
    if ack and ids:
        await bus.redis.xack(keys.registry(), group, *ids)
    return ids


async def _registered(bus: Bus) -> list[str]:
    entries = await bus.redis.xrange(keys.registry())
    return [fields[b"session_id"].decode() for _, fields in entries]


async def test_entries_every_group_acked_are_trimmed(bus: Bus) -> None:
    for group in PIPELINE:
        await bus.ensure_group(group)
    for sid in ("s1", "s2", "s3", "s4", "s5"):
        await bus.register_session(sid)
    await _claim(bus, "ingest", 5, ack=True)
    # asr finished s1, still holds s2, finished s3 and s4, has not claimed s5 yet.
    await _claim(bus, "asr", 1, ack=True)
    await _claim(bus, "asr", 1, ack=False)
    await _claim(bus, "asr", 2, ack=True)

    assert await bus.trim_registry(PIPELINE) == 1
    assert await _registered(bus) == ["s2", "s3", "s4", "s5"]
    # The held session is still pending and can still be taken over.
    assert (await bus.redis.xpending(keys.registry(), "asr"))["pending"] == 1


async def test_unread_entries_bound_the_trim(bus: Bus) -> None:
    for group in PIPELINE:
        await bus.ensure_group(group)
    for sid in ("s1", "s2", "s3"):
        await bus.register_session(sid)
    await _claim(bus, "ingest", 3, ack=True)
    await _claim(bus, "asr", 1, ack=True)  # s2 and s3 not delivered to asr yet

    assert await bus.trim_registry(PIPELINE) == 0  # the last delivered entry is kept
    assert await _registered(bus) == ["s1", "s2", "s3"]
    await _claim(bus, "asr", 2, ack=True)
    assert await bus.trim_registry(PIPELINE) == 2
    assert await _registered(bus) == ["s3"]


async def test_a_stage_without_a_group_stops_all_trimming(bus: Bus) -> None:
    await bus.ensure_group("ingest")
    for sid in ("s1", "s2", "s3"):
        await bus.register_session(sid)
    await _claim(bus, "ingest", 3, ack=True)
    # asr is not deployed yet: when it comes up it reads from the first entry.
    assert await bus.trim_registry(PIPELINE) == 0
    assert await _registered(bus) == ["s1", "s2", "s3"]


async def test_a_group_outside_the_pipeline_still_bounds_the_trim(bus: Bus) -> None:
    for group in (*PIPELINE, "enrich"):
        await bus.ensure_group(group)
    for sid in ("s1", "s2", "s3"):
        await bus.register_session(sid)
    for group in PIPELINE:
        await _claim(bus, group, 3, ack=True)
    assert await bus.trim_registry(PIPELINE) == 0  # enrich has read nothing yet
    await _claim(bus, "enrich", 2, ack=True)
    assert await bus.trim_registry(PIPELINE) == 1
    assert await _registered(bus) == ["s2", "s3"]


async def test_no_registry_yet(bus: Bus) -> None:
    assert await bus.trim_registry(PIPELINE) == 0
