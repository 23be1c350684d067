"""The semantic core end to end: event ids and revisions, determinism, checkpoint round trips."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from services.semantic.core import Output, SemanticCore
from services.semantic.settings import SemanticSettings
from shared.schemas import (
    AnalyticsSnapshot,
    Segment,
    SemanticUpdate,
    TurnUpdated,
    encode,
)

Step = Callable[[SemanticCore], list[Output]]


def seg(sid: str, speaker: str, start: float, end: float, text: str) -> Segment:
    return Segment(id=sid, start=start, end=end, text=text, speaker_id=speaker, partial=False)


def final(segment: Segment) -> Step:
    return lambda core: core.on_final(segment)


def advance(t: float) -> Step:
    return lambda core: core.advance(t)


def finish(core: SemanticCore) -> list[Output]:
    return core.finish()


# A support call with everything the core reacts to: questions, a commitment, risk terms,
# a correction, a noise-only final, an overlap whose final arrives late, clock advances.
CALL: list[Step] = [
    final(seg("seg-0-0", "spk_0", 0.6, 3.6, "Hello, support desk, how can I help?")),
    final(seg("seg-1-76000", "spk_1", 4.8, 7.3, "Hi, I want to cancel, the price is too high.")),
    advance(8.0),
    final(seg("seg-0-132000", "spk_0", 8.3, 10.1, "Which account was it sent to")),
    final(seg("seg-1-186000", "spk_1", 11.6, 13.3, "It went to our main office.")),
    final(seg("seg-1-215000", "spk_1", 13.9, 15.0, "")),
    final(seg("seg-1-246400", "spk_1", 15.4, 16.5, "Actually, it went to our billing office.")),
    final(seg("seg-0-270000", "spk_0", 16.9, 21.0, "I see. I will send you a new copy today,")),
    final(seg("seg-0-338000", "spk_0", 21.3, 24.0, "and I'll waive the fee.")),
    final(seg("seg-1-352000", "spk_1", 22.0, 23.5, "That is unacceptable, I want a manager")),
    advance(24.5),
    advance(27.0),
    final(seg("seg-1-440000", "spk_1", 27.5, 29.0, "Thank you, goodbye.")),
    advance(40.0),
    finish,
]


def run(steps: list[Step], core: SemanticCore | None = None) -> list[Output]:
    core = core or SemanticCore(SemanticSettings(), "sid-1")
    return [o for step in steps for o in step(core)]


def wire(outputs: list[Output]) -> list[bytes]:
    return [encode(o.event) for o in outputs]


def test_events_are_built_for_the_bus_without_a_clock() -> None:
    outputs = run(CALL)
    for o in outputs:
        assert (o.event.session_id, o.event.stage, o.event.emitted_at, o.event.seq) == (
            "sid-1",
            "semantic",
            0.0,
            0,
        )
    turns = [o.event for o in outputs if isinstance(o.event, TurnUpdated)]
    assert {t.id for t in turns} == {
        "turn:seg-0-0",
        "turn:seg-1-76000",
        "turn:seg-0-132000",
        "turn:seg-1-186000",
        "turn:seg-1-246400",
        "turn:seg-0-270000",
        "turn:seg-1-352000",
        "turn:seg-1-440000",
    }


def test_revisions_grow_per_id_and_each_id_closes_once_last() -> None:
    outputs = run(CALL)
    last: dict[str, int] = {}
    closed: set[str] = set()
    for o in outputs:
        assert o.event.id not in closed, f"{o.event.id} published after its final event"
        assert o.event.revision > last.get(o.event.id, 0)
        last[o.event.id] = o.event.revision
        if o.final:
            closed.add(o.event.id)
    turn_ids = {o.event.id for o in outputs if isinstance(o.event, TurnUpdated)}
    assert turn_ids <= closed
    assert outputs[-1].final and isinstance(outputs[-1].event, AnalyticsSnapshot)
    assert [o.final for o in outputs if isinstance(o.event, AnalyticsSnapshot)].count(True) == 1


def test_semantic_updates_follow_turns_and_carry_the_planted_facts() -> None:
    outputs = run(CALL)
    finals = {
        o.event.payload.turn.id: o.event.payload
        for o in outputs
        if isinstance(o.event, SemanticUpdate) and not o.event.payload.turn.partial
    }
    assert len(finals) == 8
    assert finals["turn:seg-1-76000"].risk_tags == ["churn_risk", "pricing"]
    assert finals["turn:seg-0-0"].question_count == 1
    assert finals["turn:seg-0-132000"].question_count == 1
    agent = finals["turn:seg-0-270000"]
    # Two promises across two segments: two actions, each naming the segment it was said in.
    assert [(a.text, a.speaker_id, a.commitment, a.segment_ids) for a in agent.actions] == [
        ("I will send you a new copy today", "spk_0", True, ["seg-0-270000"]),
        ("I'll waive the fee", "spk_0", True, ["seg-0-338000"]),
    ]
    assert agent.commitment_ledger_size == 2
    assert agent.turn.segment_ids == ["seg-0-270000", "seg-0-338000"]
    correction = finals["turn:seg-1-246400"]
    assert correction.corrected_turn_ids == ["turn:seg-1-186000"]
    assert finals["turn:seg-1-352000"].risk_tags == ["escalation"]
    assert finals["turn:seg-1-440000"].risk_tags == []
    assert finals["turn:seg-1-440000"].context_size == 8
    assert finals["turn:seg-1-440000"].commitment_ledger_size == 2


def test_interim_updates_bring_risk_tags_with_the_segment() -> None:
    core = SemanticCore(SemanticSettings(), "sid-1")
    outputs = core.on_final(seg("s1", "spk_1", 1.0, 3.0, "I will cancel my contract."))
    interim = [o.event for o in outputs if isinstance(o.event, SemanticUpdate)]
    assert [(e.payload.turn.partial, e.payload.risk_tags) for e in interim] == [
        (True, ["churn_risk"])
    ]
    quiet = SemanticCore(SemanticSettings(interim_updates=False), "sid-1")
    assert not any(
        isinstance(o.event, SemanticUpdate)
        for o in quiet.on_final(seg("s1", "spk_1", 1.0, 3.0, "I will cancel my contract."))
    )


def test_the_same_inputs_give_the_same_bytes() -> None:
    assert wire(run(CALL)) == wire(run(CALL))


@pytest.mark.parametrize("split", range(len(CALL) + 1))
def test_a_core_rebuilt_from_state_continues_exactly(split: int) -> None:
    expected = wire(run(CALL))
    first = SemanticCore(SemanticSettings(), "sid-1")
    before = run(CALL[:split], first)
    state = json.loads(json.dumps(first.state()))
    resumed = SemanticCore(SemanticSettings(), "sid-1", state=state)
    assert wire(before + run(CALL[split:], resumed)) == expected
    assert resumed.state() == json.loads(json.dumps(resumed.state()))


def test_a_replayed_final_changes_nothing() -> None:
    core = SemanticCore(SemanticSettings(), "sid-1")
    segment = seg("s1", "spk_0", 0.0, 2.0, "Hello there.")
    assert core.on_final(segment)
    assert [o for o in core.on_final(segment) if isinstance(o.event, TurnUpdated)] == []


def test_nothing_follows_finish() -> None:
    core = SemanticCore(SemanticSettings(), "sid-1")
    run(CALL, core)
    assert core.finish() == []
    assert core.on_final(seg("late", "spk_0", 50.0, 51.0, "late words")) == []
    assert core.advance(60.0) == []


def test_embeddings_on_without_a_model_are_refused() -> None:
    with pytest.raises(ValueError, match="no embedding model"):
        SemanticCore(SemanticSettings(embeddings=True), "sid-1")
