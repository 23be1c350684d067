"""The publish script against real Redis: gap-free seq, (id, revision) dedup, immutable finals."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.bus import Bus
from shared.consumer import TranscriptReducer, read_events
from shared.schemas import Done, DonePayload, PartialSegment, Segment, SegmentFinalized


def _segment_event(sid: str, seg_id: str, revision: int, final: bool):
    segment = Segment(
        id=seg_id,
        start=0.0,
        end=1.0,
        text=f"{seg_id} r{revision}",
        partial=not final,
        revision=revision,
    )
    cls = SegmentFinalized if final else PartialSegment
    return cls(session_id=sid, id=seg_id, revision=revision, payload=segment)


async def _all_events(bus: Bus, sid: str):
    return [e async for e in read_events(bus.redis, sid)]


async def test_seq_is_assigned_from_one_without_gaps(bus: Bus) -> None:
    results = [await bus.publish(_segment_event("s1", f"seg{i}", 1, False)) for i in range(5)]
    assert [r.seq for r in results] == [1, 2, 3, 4, 5]
    events = await _all_events(bus, "s1")
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]


async def test_not_newer_revision_is_dropped(bus: Bus) -> None:
    assert (await bus.publish(_segment_event("s1", "a", 2, False))).published
    stale = await bus.publish(_segment_event("s1", "a", 2, False))
    older = await bus.publish(_segment_event("s1", "a", 1, False))
    assert (stale.published, stale.reason) == (False, "stale")
    assert (older.published, older.head_revision) == (False, 2)
    assert [e.revision for e in await _all_events(bus, "s1")] == [2]


async def test_final_is_immutable(bus: Bus) -> None:
    assert (await bus.publish(_segment_event("s1", "a", 1, True))).published
    later = await bus.publish(_segment_event("s1", "a", 5, False))
    again = await bus.publish(_segment_event("s1", "a", 9, True))
    assert (later.reason, again.reason) == ("final", "final")
    assert len(await _all_events(bus, "s1")) == 1


async def test_closing_publish_outranks_a_dead_writers_partials(bus: Bus) -> None:
    for rev in (1, 2, 3):
        await bus.publish(_segment_event("s1", "a", rev, False))
    # A worker that took over counts from 1 again; its final must still land once.
    result = await bus.publish_closing(_segment_event("s1", "a", 2, True))
    assert result.published
    events = await _all_events(bus, "s1")
    assert [(e.revision, type(e).__name__) for e in events][-1] == (4, "SegmentFinalized")
    assert events[-1].payload.revision == 4
    assert not (await bus.publish_closing(_segment_event("s1", "a", 7, True))).published


async def test_nothing_is_published_after_done(bus: Bus) -> None:
    await bus.publish(Done(session_id="s1", id="done", payload=DonePayload()))
    late = await bus.publish(_segment_event("s1", "b", 1, False))
    assert (late.published, late.reason) == (False, "closed")


async def test_seq_survives_json_strings_that_look_like_seq(bus: Bus) -> None:
    event = _segment_event("s1", "a", 1, False)
    event.payload.text = 'he said "seq":0, twice'
    await bus.publish(event)
    (stored,) = await _all_events(bus, "s1")
    assert stored.seq == 1 and stored.payload.text == 'he said "seq":0, twice'


# One publish: (writer, entity, revision, final). Writers replay overlapping histories.
_publishes = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["x", "y", "z"]),
        st.integers(1, 6),
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=_publishes, data=st.data())
async def test_any_interleaving_of_writers_gives_one_consistent_stream(
    bus: Bus, plan, data
) -> None:
    sid = f"prop-{uuid.uuid4().hex}"
    # Several writers, each publishing its list concurrently, with duplicates.
    writers: dict[int, list] = {}
    for writer, entity, revision, final in plan:
        writers.setdefault(writer, []).append(_segment_event(sid, entity, revision, final))
        if data.draw(st.booleans()):  # a replay after a crash publishes it again
            writers[writer].append(_segment_event(sid, entity, revision, final))

    async def run(events):
        for event in events:
            await bus.publish(event)

    await asyncio.gather(*(run(evts) for evts in writers.values()))
    events = await _all_events(bus, sid)

    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    pairs = [(e.id, e.revision) for e in events]
    assert len(pairs) == len(set(pairs))
    for entity in {e.id for e in events}:
        chain = [e for e in events if e.id == entity]
        revisions = [e.revision for e in chain]
        assert revisions == sorted(set(revisions)), "revisions per id strictly increase"
        finals = [e for e in chain if isinstance(e, SegmentFinalized)]
        assert len(finals) <= 1 and (not finals or chain[-1] is finals[0]), "nothing after a final"
    published = {(e.id, e.revision) for e in events}
    tried = {(ev.id, ev.revision) for evs in writers.values() for ev in evs}
    assert published <= tried

    # The reducer: applying any prefix twice equals applying it once.
    cut = len(events) * data.draw(st.integers(0, 100)) // 100
    once, twice = TranscriptReducer(sid), TranscriptReducer(sid)
    for e in events:
        once.apply(e)
    for e in events[:cut] + events:
        twice.apply(e)
    assert once.snapshot() == twice.snapshot()


async def test_checkpoint_is_saved_only_with_an_appended_event(bus: Bus) -> None:
    first = await bus.publish(_segment_event("s1", "a", 1, True), checkpoint=("asr", {"pos": 10}))
    assert first.published
    assert await bus.load_checkpoint("s1", "asr") == {"pos": 10}
    replay = await bus.publish(_segment_event("s1", "a", 1, True), checkpoint=("asr", {"pos": 3}))
    assert not replay.published
    assert await bus.load_checkpoint("s1", "asr") == {"pos": 10}
