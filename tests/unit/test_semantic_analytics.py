"""Conversation analytics through the core: talk ratio, interruptions, latency, snapshots."""

from __future__ import annotations

from itertools import pairwise

import pytest

from services.semantic.core import SemanticCore
from services.semantic.settings import SemanticSettings
from shared.schemas import AnalyticsPayload, AnalyticsSnapshot, Segment, SpeakerStats


def seg(sid: str, speaker: str, start: float, end: float, text: str = "some words here") -> Segment:
    return Segment(id=sid, start=start, end=end, text=text, speaker_id=speaker, partial=False)


def run(segments: list[Segment], interval_s: float = 1.0) -> list[AnalyticsPayload]:
    core = SemanticCore(SemanticSettings(analytics_interval_s=interval_s), "sid")
    outputs = [o for s in segments for o in core.on_final(s)] + core.finish()
    return [o.event.payload for o in outputs if isinstance(o.event, AnalyticsSnapshot)]


def by_speaker(payload: AnalyticsPayload) -> dict[str | None, SpeakerStats]:
    return {s.speaker_id: s for s in payload.speakers}


def test_talk_ratio_follows_speech_not_turn_spans() -> None:
    # spk_0 speaks 4 x 2 s with 1.9 s pauses inside one turn (8 s speech, 13.7 s span);
    # spk_1 answers with 4 s of speech. Truth: 8 / 12 = 66.7 %.
    segments = [seg(f"a{i}", "spk_0", i * 3.9, i * 3.9 + 2.0) for i in range(4)]
    segments += [seg("b1", "spk_1", 15.0, 17.0), seg("b2", "spk_1", 17.5, 19.5)]
    stats = by_speaker(run(segments)[-1])
    assert stats["spk_0"].talk_ratio == pytest.approx(8 / 12, abs=0.05)
    assert stats["spk_1"].talk_ratio == pytest.approx(4 / 12, abs=0.05)
    assert stats["spk_0"].talk_time_s == pytest.approx(8.0)
    assert stats["spk_0"].longest_monologue_s == pytest.approx(3 * 3.9 + 2.0)
    assert (stats["spk_0"].turn_count, stats["spk_1"].turn_count) == (1, 1)


@pytest.mark.parametrize("late", [False, True])
def test_a_planted_overlap_is_one_interruption_by_the_right_speaker(late: bool) -> None:
    # spk_0 talks 0-9 (two segments); spk_1 cuts in at 6.0 for 1.5 s. With `late`, spk_1's
    # final arrives after spk_0's second one (its channel paused later).
    a1, a2 = seg("a1", "spk_0", 0.0, 5.0), seg("a2", "spk_0", 5.4, 9.0)
    b1 = seg("b1", "spk_1", 6.0, 7.5)
    after = [seg("b2", "spk_1", 10.0, 12.0), seg("a3", "spk_0", 12.6, 14.0)]
    order = [a1, a2, b1] if late else [a1, b1, a2]
    stats = by_speaker(run(order + after)[-1])
    assert (stats["spk_1"].interruptions_initiated, stats["spk_1"].interruptions_received) == (1, 0)
    assert (stats["spk_0"].interruptions_initiated, stats["spk_0"].interruptions_received) == (0, 1)
    assert stats["spk_1"].interruptions == 1


def test_hand_overs_within_the_tolerance_are_not_interruptions() -> None:
    segments = [
        seg("a1", "spk_0", 0.0, 3.0),
        seg("b1", "spk_1", 2.7, 5.0),  # 0.3 s overlap < 0.5 s tolerance
        seg("a2", "spk_0", 5.8, 8.0),
    ]
    stats = by_speaker(run(segments)[-1])
    assert sum(s.interruptions_initiated for s in stats.values()) == 0
    assert sum(s.interruptions_received for s in stats.values()) == 0


def test_mean_response_latency_is_the_gap_before_answering() -> None:
    segments = [
        seg("a1", "spk_0", 0.0, 2.0),
        seg("b1", "spk_1", 2.5, 4.0),  # answers after 0.5 s
        seg("a2", "spk_0", 5.5, 7.0),  # answers after 1.5 s
        seg("b2", "spk_1", 8.0, 9.0),  # answers after 1.0 s
        seg("b3", "spk_1", 12.0, 13.0),  # its own next turn, answers nothing
    ]
    stats = by_speaker(run(segments)[-1])
    assert stats["spk_1"].mean_response_latency_s == pytest.approx(0.75)
    assert stats["spk_0"].mean_response_latency_s == pytest.approx(1.5)


def test_interim_snapshots_are_throttled_and_only_the_last_is_final() -> None:
    # Ten finals 0.3 s apart in audio time: at most one interim snapshot per second.
    segments = [seg(f"a{i}", "spk_0", i * 0.3, i * 0.3 + 0.25) for i in range(10)]
    snapshots = run(segments, interval_s=1.0)
    interim = [s for s in snapshots if not s.turns_final]
    assert 1 <= len(interim) <= 3
    times = [s.audio_time_s for s in interim]
    assert all(b - a >= 1.0 for a, b in pairwise(times))
    assert [s.turns_final for s in snapshots][-1] is True
    assert snapshots[-1].completeness == {"turns_final": True}
    assert snapshots[-1].speakers[0].talk_time_s == pytest.approx(2.5)
    assert not any(s.turns_final for s in snapshots[:-1])


def test_mono_session_is_one_speaker_without_interruptions() -> None:
    segments = [
        Segment(id="m1", start=0.0, end=2.0, text="hello there", partial=False),
        Segment(id="m2", start=1.5, end=3.0, text="overlapping", partial=False),
    ]
    final = run(segments)[-1]
    assert [(s.speaker_id, s.talk_ratio, s.interruptions_initiated) for s in final.speakers] == [
        ("spk_0", 1.0, 0)
    ]
