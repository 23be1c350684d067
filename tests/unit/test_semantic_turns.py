"""Turn grouping: gaps, speaker changes, out-of-order cross-channel finals, finality rules."""

from __future__ import annotations

from services.semantic.turns import SegmentPart, TurnRevision, TurnTracker
from shared.schemas import Segment


def part(
    sid: str, speaker: str | None, start: float, end: float, text: str = "words"
) -> SegmentPart:
    return SegmentPart.of(
        Segment(id=sid, start=start, end=end, text=text, speaker_id=speaker, partial=False)
    )


def summary(revisions: list[TurnRevision]) -> list[tuple[str, int, bool, list[str]]]:
    return [(r.turn.id, r.turn.revision, r.turn.partial, r.turn.segment_ids) for r in revisions]


def test_a_short_pause_extends_the_turn_and_a_gap_starts_a_new_one() -> None:
    tracker = TurnTracker(turn_gap_s=2.0)
    assert summary(tracker.add(part("a1", "spk_0", 0.0, 2.0))) == [("turn:a1", 1, True, ["a1"])]
    assert summary(tracker.add(part("a2", "spk_0", 3.9, 5.0))) == [
        ("turn:a1", 2, True, ["a1", "a2"])
    ]
    # 2.0 s after the turn's end: the gap closes it and opens another.
    assert summary(tracker.add(part("a3", "spk_0", 7.0, 8.0))) == [
        ("turn:a1", 3, False, ["a1", "a2"]),
        ("turn:a3", 1, True, ["a3"]),
    ]


def test_the_turn_carries_speaker_times_and_joined_text() -> None:
    tracker = TurnTracker(turn_gap_s=2.0)
    tracker.add(part("a1", "spk_1", 1.0, 2.0, "Hello there."))
    turn = tracker.add(part("a2", "spk_1", 2.5, 4.0, " How are you? "))[-1].turn
    assert (turn.speaker_id, turn.start, turn.end) == ("spk_1", 1.0, 4.0)
    assert turn.text == "Hello there. How are you?"


def test_mono_segments_without_a_speaker_are_spk_0() -> None:
    tracker = TurnTracker(turn_gap_s=2.0)
    assert tracker.add(part("m1", None, 0.0, 1.0))[0].turn.speaker_id == "spk_0"


def test_another_speaker_starting_after_the_turn_ends_makes_it_final() -> None:
    tracker = TurnTracker(turn_gap_s=2.0, track_lag_s=2.0)
    tracker.add(part("a1", "spk_0", 0.0, 3.0))
    # spk_1 took the floor at 3.5, but spk_0's track may still hold a final before it.
    assert summary(tracker.add(part("b1", "spk_1", 3.5, 5.0))) == [("turn:b1", 1, True, ["b1"])]
    # Once every track is decoded past 3.5, spk_0's turn is over.
    assert summary(tracker.advance(3.6)) == [("turn:a1", 2, False, ["a1"])]
    # spk_0 speaks again less than turn_gap_s later: a new turn (the floor changed), and
    # spk_1's turn closes once spk_1's track is heard past it.
    assert summary(tracker.add(part("a2", "spk_0", 5.5, 6.0))) == [("turn:a2", 1, True, ["a2"])]
    assert summary(tracker.advance(5.6)) == [("turn:b1", 2, False, ["b1"])]


def test_a_late_final_from_before_the_floor_change_joins_its_speakers_turn() -> None:
    """Seen live: the customer's second sentence was decoded after the agent's reply."""
    tracker = TurnTracker(turn_gap_s=2.0, track_lag_s=2.0)
    tracker.add(part("c1", "spk_1", 38.35, 39.2, "I will wait."))
    tracker.add(part("a1", "spk_0", 42.05, 43.05, "It is in the email."))
    late = tracker.add(part("c2", "spk_1", 39.6, 41.19, "What is the reference number?"))
    assert summary(late) == [("turn:c1", 2, True, ["c1", "c2"])]
    # spk_1 next speaks after the agent took the floor: its turn closes, a new one opens.
    after = tracker.add(part("c3", "spk_1", 43.5, 44.0, "Thanks."))
    assert summary(after) == [("turn:c1", 3, False, ["c1", "c2"]), ("turn:c3", 1, True, ["c3"])]


def test_an_overlapping_late_final_of_the_other_channel_leaves_the_turn_open() -> None:
    # spk_0 talks 0-6 in two segments; spk_1's final for 4.5-7 arrives after both.
    tracker = TurnTracker(turn_gap_s=2.0)
    tracker.add(part("a1", "spk_0", 0.0, 3.0))
    tracker.add(part("a2", "spk_0", 3.3, 6.0))
    out = summary(tracker.add(part("b1", "spk_1", 4.5, 7.0)))
    assert out == [("turn:b1", 1, True, ["b1"])]
    assert set(tracker.open) == {"spk_0", "spk_1"}


def test_out_of_order_cross_channel_finals_form_the_same_turns_by_start() -> None:
    # spk_1 (channel 1) speaks 2-3 while spk_0 pauses; its final arrives after spk_0's
    # next one, which started before spk_1's segment ended (overlap), so no split.
    tracker = TurnTracker(turn_gap_s=2.0)
    out = []
    out += tracker.add(part("a1", "spk_0", 0.0, 2.0))
    out += tracker.add(part("a2", "spk_0", 2.8, 5.0))
    late = tracker.add(part("b1", "spk_1", 2.1, 3.0))
    # Audio is already turn_gap_s past the late turn's end: it opens and closes at once.
    assert summary(late) == [("turn:b1", 1, True, ["b1"]), ("turn:b1", 2, False, ["b1"])]
    out += late + tracker.finish()
    finals = sorted((r.turn for r in out if not r.turn.partial), key=lambda t: t.start)
    assert [(t.id, t.segment_ids) for t in finals] == [
        ("turn:a1", ["a1", "a2"]),
        ("turn:b1", ["b1"]),
    ]


def test_advance_makes_a_turn_final_exactly_turn_gap_s_after_its_end() -> None:
    tracker = TurnTracker(turn_gap_s=2.0)
    tracker.add(part("a1", "spk_0", 0.0, 3.0))
    assert tracker.advance(4.99) == []
    assert summary(tracker.advance(5.0)) == [("turn:a1", 2, False, ["a1"])]
    assert tracker.advance(9.0) == []


def test_finish_closes_every_open_turn_earliest_first() -> None:
    tracker = TurnTracker(turn_gap_s=2.0)
    tracker.add(part("b1", "spk_1", 1.0, 4.0))
    tracker.add(part("a1", "spk_0", 0.5, 5.0))
    assert summary(tracker.finish()) == [
        ("turn:a1", 2, False, ["a1"]),
        ("turn:b1", 2, False, ["b1"]),
    ]
    assert tracker.finish() == []


def test_state_round_trip_keeps_open_turns_and_clock() -> None:
    tracker = TurnTracker(turn_gap_s=2.0)
    tracker.add(part("a1", "spk_0", 0.0, 3.0))
    tracker.add(part("b1", "spk_1", 2.0, 3.5))
    restored = TurnTracker(turn_gap_s=2.0, state=tracker.state())
    assert summary(restored.advance(5.2)) == summary(tracker.advance(5.2))
    assert restored.state() == tracker.state()
