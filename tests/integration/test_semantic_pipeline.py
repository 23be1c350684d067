"""The semantic stage end to end: a planted stereo support call through the real pipeline.

tests/fixtures/support_call.json lists what the call plants (by utterance index):
questions, action items with their speaker, risk turns, neutral turns and one
interruption. Planted utterances are matched to final turns by time, never by text:
tiny.en's wording and punctuation vary, and the semantic core has to cope with that.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from shared.schemas import (
    AnalyticsSnapshot,
    Done,
    Event,
    SegmentFinalized,
    SemanticAnnotation,
    SemanticUpdate,
    SpeakerStats,
    TurnUpdated,
)
from streamscribe.supervisor import Stack
from tests.support.pipeline import assert_consistent, collect, push, reference, running_stack

pytestmark = pytest.mark.slow

NAME = "support_call"
# The acceptance bound of issue 16: talk ratios within 5 points of the truth.
TALK_RATIO_POINTS = 0.05


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack") / "workers.log") as running:
        yield running


@pytest.fixture(scope="module")
def events(stack: Stack) -> list[Event]:
    async def run() -> list[Event]:
        sid = await push(stack.url, NAME, speed=2.0, channels_as_speakers=True)
        return await collect(stack.url, sid)

    return asyncio.run(run())


@pytest.fixture(scope="module")
def ref() -> dict[str, Any]:
    return reference(NAME)


@pytest.fixture(scope="module")
def final_annotations(events: list[Event]) -> list[SemanticAnnotation]:
    """The semantic_update of every final turn, one each, in turn start order."""
    annotations = [
        e.payload for e in events if isinstance(e, SemanticUpdate) and not e.payload.turn.partial
    ]
    ids = Counter(a.turn.id for a in annotations)
    assert ids and max(ids.values()) == 1, f"one final semantic_update per turn: {ids}"
    final_turns = {
        e.payload.id for e in events if isinstance(e, TurnUpdated) and not e.payload.partial
    }
    assert set(ids) == final_turns, "every final turn annotated, nothing else"
    return sorted(annotations, key=lambda a: a.turn.start)


def turns_of(
    annotations: list[SemanticAnnotation], utterance: dict[str, Any]
) -> list[SemanticAnnotation]:
    """The final turns of the utterance's speaker that overlap it in time (at least one).

    Usually one. Two when a pause inside the utterance ("I will wait. What is ...") makes
    two segments and the other channel's next final arrives before the second one: the
    turn tracker then closes the first turn early (a known limit of turns.py, see the
    report of this test's commit). What the utterance plants must be in those turns.
    """
    overlapping = [
        a
        for a in annotations
        if a.turn.speaker_id == utterance["speaker"]
        and a.turn.start < utterance["end_s"]
        and a.turn.end > utterance["start_s"]
    ]
    assert overlapping, f"no final turn of {utterance['speaker']} at {utterance['text']!r}"
    return overlapping


def content_words(text: str) -> set[str]:
    small = {"i", "we", "we'll", "i'll", "let", "me", "you", "your", "the", "a", "will"}
    return set(re.findall(r"[a-z']+", text.lower().replace("\u2019", "'"))) - small


def last_snapshot(events: list[Event]) -> dict[str, SpeakerStats]:
    snapshots = [e for e in events if isinstance(e, AnalyticsSnapshot)]
    assert snapshots, "no analytics_snapshot"
    last = snapshots[-1].payload
    assert last.turns_final and last.completeness == {"turns_final": True}
    assert [s.payload.turns_final for s in snapshots].count(True) == 1, "only the last is final"
    return {s.speaker_id or "": s for s in last.speakers}


def test_done_once_and_last_and_every_final_in_one_final_turn(events: list[Event]) -> None:
    assert_consistent(events)
    assert sum(isinstance(e, Done) for e in events) == 1
    assert isinstance(events[-1], Done)
    finals = {e.payload.id for e in events if isinstance(e, SegmentFinalized) and e.payload.text}
    final_turns = {
        e.payload.id: e.payload
        for e in events
        if isinstance(e, TurnUpdated) and not e.payload.partial
    }
    in_turns = Counter(s for t in final_turns.values() for s in t.segment_ids)
    assert set(in_turns) == finals, "every final with text in a final turn, nothing else"
    assert max(in_turns.values()) == 1, f"a final in two turns: {in_turns.most_common(2)}"


def test_every_planted_question_is_counted(
    ref: dict[str, Any], final_annotations: list[SemanticAnnotation]
) -> None:
    utterances = ref["utterances"]
    planted = Counter(utterances[i]["speaker"] for i in ref["planted"]["questions"])
    for i in ref["planted"]["questions"]:
        turns = turns_of(final_annotations, utterances[i])
        assert sum(a.question_count for a in turns) >= 1, (
            utterances[i]["text"],
            [a.turn.text for a in turns],
        )
    for speaker, count in planted.items():
        counted = sum(a.question_count for a in final_annotations if a.turn.speaker_id == speaker)
        assert counted >= count, (speaker, counted, count)


def test_every_planted_action_is_detected_with_its_speaker(
    ref: dict[str, Any], final_annotations: list[SemanticAnnotation]
) -> None:
    utterances = ref["utterances"]
    for i in sorted({a["utterance"] for a in ref["planted"]["actions"]}):
        turns = turns_of(final_annotations, utterances[i])
        found = [a for t in turns for a in t.actions]
        for planted in [a for a in ref["planted"]["actions"] if a["utterance"] == i]:
            want = content_words(planted["text"])
            match = next(
                (
                    a
                    for a in found
                    if a.speaker_id == planted["speaker"]
                    and a.commitment
                    and content_words(a.text) & want
                ),
                None,
            )
            assert match is not None, (planted, [t.turn.text for t in turns], found)
            assert set(match.segment_ids) <= {s for t in turns for s in t.turn.segment_ids}
            found.remove(match)  # two planted actions need two detected ones


def test_risk_tags_on_planted_turns_and_none_on_neutral_ones(
    ref: dict[str, Any], final_annotations: list[SemanticAnnotation]
) -> None:
    utterances = ref["utterances"]
    for index, tags in ref["planted"]["risk"].items():
        turns = turns_of(final_annotations, utterances[int(index)])
        fired = {tag for t in turns for tag in t.risk_tags}
        assert set(tags) <= fired, (tags, [t.turn.text for t in turns])
    for i in ref["planted"]["neutral"]:
        for t in turns_of(final_annotations, utterances[i]):
            assert t.risk_tags == [], (t.turn.text, t.risk_terms)


def test_talk_ratio_within_five_points_of_the_speech_durations(
    ref: dict[str, Any], events: list[Event]
) -> None:
    speech: Counter[str] = Counter()
    for u in ref["utterances"]:
        speech[u["speaker"]] += u["end_s"] - u["start_s"]
    total = sum(speech.values())
    speakers = last_snapshot(events)
    assert set(speakers) == set(speech)
    for name, seconds in speech.items():
        assert abs(speakers[name].talk_ratio - seconds / total) <= TALK_RATIO_POINTS, (
            name,
            speakers[name].talk_ratio,
            seconds / total,
        )


def test_the_planted_overlap_is_one_interruption_by_the_customer(
    ref: dict[str, Any], events: list[Event]
) -> None:
    (planted,) = ref["planted"]["interruptions"]
    speakers = last_snapshot(events)
    by, of = speakers[planted["by"]], speakers[planted["of"]]
    assert (by.interruptions_initiated, by.interruptions_received) == (1, 0)
    assert (of.interruptions_initiated, of.interruptions_received) == (0, 1)
