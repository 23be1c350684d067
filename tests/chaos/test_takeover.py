"""Kill workers and Redis mid-session: the transcript stays complete and consistent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from shared import keys
from shared.schemas import (
    AnalyticsSnapshot,
    Done,
    SegmentEnriched,
    SegmentFinalized,
    TurnUpdated,
)
from streamscribe.supervisor import Stack
from tests.support.pipeline import (
    CHAOS_BUS,
    allowed_gap,
    assert_consistent,
    collect,
    finals_published,
    kill_owner_mid_session,
    push,
    reference_text,
    running_stack,
    sync_client,
    transcript_text,
    wait_until,
    wer,
)

pytestmark = [pytest.mark.chaos, pytest.mark.slow]
SPEED = 1.5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("chaos") / "workers.log") as running:
        yield running


@pytest.fixture(scope="module")
def fault_free_wer(stack: Stack) -> float:
    async def run() -> list:
        sid = await push(stack.url, "conv_short", speed=SPEED)
        return await collect(stack.url, sid)

    events = asyncio.run(run())
    assert_consistent(events)
    return wer(reference_text("conv_short"), transcript_text(events))


def _first_audio_pos(url: str, sid: str) -> int:
    """Sample position of the oldest audio chunk still in the session's audio log."""
    from shared.audio_log import from_fields
    from shared.schemas import AudioChunk

    client = sync_client(url)
    try:
        for _id, fields in client.xrange(keys.audio(sid)):
            entry = from_fields(fields)
            if isinstance(entry, AudioChunk):
                return entry.pos
    finally:
        client.close()
    return -1


@pytest.mark.parametrize("stage", ["asr", "ingest"])
def test_sigkilled_worker_is_taken_over_and_transcript_is_complete(
    stack: Stack, fault_free_wer: float, stage: str
) -> None:
    stack.start(stage)  # a second worker of the stage, standing by
    sid = f"chaos-{stage}"

    async def scenario() -> tuple[float, int, list]:
        pushing = asyncio.create_task(push(stack.url, "conv_short", speed=SPEED, session_id=sid))
        takeover_s = await asyncio.to_thread(kill_owner_mid_session, stack.url, stage, sid)
        oldest = _first_audio_pos(stack.url, sid)
        await pushing
        return takeover_s, oldest, await collect(stack.url, sid)

    takeover_s, oldest_audio, events = asyncio.run(scenario())
    # The finals before the kill let asr trim the log: the new owner resumes on what its
    # checkpoint kept, not on the whole recording.
    assert oldest_audio > 0, "the audio log was trimmed before the takeover"
    min_idle_s = CHAOS_BUS.claim_min_idle_ms / 1000
    # Idle counts from the dead owner's last renewal, so the claim lands at most
    # min-idle after the kill, plus one claim-loop turn (block_ms) of slack.
    assert takeover_s <= min_idle_s + CHAOS_BUS.block_ms / 1000 + 0.5, takeover_s
    assert_consistent(events)
    ref = reference_text("conv_short")
    streaming = wer(ref, transcript_text(events))
    finals = [
        (e.payload.id, e.payload.start, e.payload.end, e.payload.text)
        for e in events
        if isinstance(e, SegmentFinalized)
    ]
    assert streaming <= fault_free_wer + allowed_gap(ref), "\n".join(
        map(str, [streaming, fault_free_wer, *finals])
    )
    assert sum(isinstance(e, SegmentFinalized) for e in events) >= 6


def test_redis_killed_and_restarted_mid_session(stack: Stack, fault_free_wer: float) -> None:
    server = stack.redis_process
    assert server is not None, "the stack runs an embedded Redis"

    async def scenario() -> list:
        sid = await push(stack.url, "conv_short", speed=None)  # all audio accepted first
        # A consumer already following rides out the restart: it resumes after the last
        # event it read (assert_consistent: gap-free from seq 1, nothing twice).
        following = asyncio.create_task(collect(stack.url, sid))
        await asyncio.to_thread(wait_until, lambda: finals_published(stack.url, sid) >= 1, 60)
        server.restart(kill=True)  # SIGKILL, then the same port and AOF
        return await following

    events = asyncio.run(scenario())
    assert_consistent(events)
    ref = reference_text("conv_short")
    streaming = wer(ref, transcript_text(events))
    assert streaming <= fault_free_wer + allowed_gap(ref), (streaming, transcript_text(events))


def _event_stage_outcome(stage: str, events: list) -> object:
    """What an event-driven stage made of a session, to compare runs with."""
    if stage == "enrich":
        enriched = [e.payload for e in events if isinstance(e, SegmentEnriched)]
        return sorted(
            (p.segment_id, repr(p.audio_state), repr(p.extraction_status)) for p in enriched
        )
    turns = [
        (t.payload.id, t.payload.speaker_id, t.payload.start, t.payload.end, t.payload.text)
        for t in events
        if isinstance(t, TurnUpdated) and not t.payload.partial
    ]
    snapshots = [e.payload for e in events if isinstance(e, AnalyticsSnapshot)]
    assert snapshots and snapshots[-1].turns_final, "the last snapshot has every turn final"
    return sorted(turns), snapshots[-1].speakers


@pytest.mark.parametrize("stage", ["semantic", "enrich"])
def test_event_stage_takeover_gives_the_fault_free_outcome(stack: Stack, stage: str) -> None:
    """SIGKILL the worker of an event-driven stage mid-session; another takes over from its
    checkpoint: turns and analytics (semantic), enrichments and speaker baselines (enrich)
    end exactly as in a fault-free run, each published once."""

    async def session(sid: str | None, kill: bool) -> list:
        pushing = asyncio.create_task(
            push(stack.url, "call_stereo", speed=SPEED, channels_as_speakers=True, session_id=sid)
        )
        if kill:
            assert sid is not None
            await asyncio.to_thread(kill_owner_mid_session, stack.url, stage, sid)
        return await collect(stack.url, await pushing)

    fault_free = asyncio.run(session(None, kill=False))
    stack.start(stage)  # a second worker, standing by for the takeover
    killed = asyncio.run(session(f"chaos-{stage}", kill=True))
    for events in (fault_free, killed):
        assert_consistent(events)
        assert sum(isinstance(e, Done) for e in events) == 1
    outcome = _event_stage_outcome(stage, killed)
    assert outcome == _event_stage_outcome(stage, fault_free)
    if stage == "enrich":
        assert len(outcome) >= 4  # type: ignore[arg-type]
        # The speaker baselines continued across the takeover rather than restarting:
        # the final checkpoint's baselines equal the fault-free run's.
        baselines = [
            _checkpoint(stack.url, events[0].session_id, stage)["state"]["core"]
            for events in (killed, fault_free)
        ]
        assert baselines[0] == baselines[1]
        assert baselines[0]["baselines"], baselines[0]


def _checkpoint(url: str, sid: str, stage: str) -> dict:
    import msgspec

    client = sync_client(url)
    try:
        return msgspec.json.decode(client.hget(keys.checkpoints(sid), stage))
    finally:
        client.close()
