"""Audio log trimming against real Redis: never below what a reading stage still needs."""

from __future__ import annotations

from shared import keys, stages
from shared.bus import Bus


async def _log(bus: Bus, sid: str, n: int) -> list[str]:
    return [
        (await bus.redis.xadd(keys.audio(sid), {"k": "chunk", "i": i})).decode() for i in range(n)
    ]


async def _remaining(bus: Bus, sid: str) -> list[str]:
    return [entry_id.decode() for entry_id, _ in await bus.redis.xrange(keys.audio(sid))]


async def test_trims_below_the_readers_resume_id(bus: Bus) -> None:
    ids = await _log(bus, "t1", 10)
    await bus.save_checkpoint("t1", "asr", {"resume_id": ids[4], "tracks": {}})
    assert await bus.trim_audio("t1", ["asr"]) == 4
    assert await _remaining(bus, "t1") == ids[4:]
    # Idempotent: the same checkpoint trims nothing more.
    assert await bus.trim_audio("t1", ["asr"]) == 0


async def test_the_slowest_reader_bounds_the_trim(bus: Bus) -> None:
    ids = await _log(bus, "t2", 10)
    await bus.save_checkpoint("t2", "asr", {"resume_id": ids[7]})
    # enrich has read nothing yet: nothing may go.
    assert await bus.trim_audio("t2", ["asr", "enrich"]) == 0
    await bus.save_checkpoint("t2", "enrich", {"resume_id": ids[2]})
    assert await bus.trim_audio("t2", ["asr", "enrich"]) == 2
    assert await _remaining(bus, "t2") == ids[2:]


async def test_a_checkpoint_without_a_resume_id_trims_nothing(bus: Bus) -> None:
    ids = await _log(bus, "t3", 5)
    for state in ({"resume_id": None}, {"tracks": {}}, {"resume_id": "not-an-id"}):
        await bus.save_checkpoint("t3", "asr", state)
        assert await bus.trim_audio("t3", ["asr"]) == 0
    await bus.redis.hset(keys.checkpoints("t3"), "asr", b"{not json")
    assert await bus.trim_audio("t3", ["asr"]) == 0
    assert await _remaining(bus, "t3") == ids


async def test_ids_compare_as_numbers_not_strings(bus: Bus) -> None:
    sid = "t4"
    for entry_id in ("9-0", "10-0", "10-2", "100-0"):
        await bus.redis.xadd(keys.audio(sid), {"k": "chunk"}, id=entry_id)
    await bus.save_checkpoint(sid, "asr", {"resume_id": "100-0"})
    await bus.save_checkpoint(sid, "enrich", {"resume_id": "10-2"})
    assert await bus.trim_audio(sid, ["asr", "enrich"]) == 2
    assert await _remaining(bus, sid) == ["10-2", "100-0"]


def test_only_pipeline_stages_that_read_audio_bound_the_trim() -> None:
    # From the installed specs' `reads_audio`; a stage not installed here may read it.
    assert stages.audio_readers(("ingest", "asr")) == ("asr",)
    assert stages.audio_readers(("ingest",)) == ()
    assert stages.audio_readers(("ingest", "asr", "not-installed")) == ("asr", "not-installed")
