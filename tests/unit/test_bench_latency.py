"""The benchmark's pure helpers: percentiles, push clock, matching finals to utterances, WER."""

from __future__ import annotations

import numpy as np
import pytest

from bench.latency import (
    PushClock,
    SegmentArrival,
    Utterance,
    match_finals,
    percentile,
    summarize,
    unmatched_finals,
    utterance_latencies,
)
from bench.reference import errors_per_utterance, normalize_text, word_errors

T0 = 1_000.0


def clock(duration_s: float = 20.0, frame_s: float = 0.02, lag_s: float = 0.0) -> PushClock:
    """Frames pushed as their audio happens (plus `lag_s`), audio 0 at wall T0."""
    frames = round(duration_s / frame_s)
    # Summed frame durations, as the producer reports them (float error included).
    marks, audio = [], 0.0
    for _ in range(frames):
        audio += frame_s
        marks.append((audio, T0 + audio + lag_s))
    return PushClock(marks)


def seg(
    sid: str, start: float, end: float, text: str, at: float, *, final: bool = True, ch=None
) -> SegmentArrival:
    return SegmentArrival(
        segment_id=sid, start_s=start, end_s=end, text=text, channel=ch, final=final,
        arrived_at=T0 + at,
    )  # fmt: skip


@pytest.mark.parametrize("q", [0, 10, 50, 90, 95, 100])
def test_percentile_matches_numpy_linear(q: float) -> None:
    values = [3.0, 0.5, 2.25, 9.0, 1.0, 4.5, 0.75]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_edges() -> None:
    assert percentile([], 50) is None
    assert percentile([2.0], 95) == 2.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    assert summarize([1.0, 3.0]) == {"n": 2, "p50": 2.0, "p95": 2.9, "max": 3.0, "mean": 2.0}
    assert summarize([])["p95"] is None


def test_push_clock_finds_first_push_reaching_audio_time() -> None:
    c = clock(lag_s=0.5)
    # 3.0 s is a frame boundary reached by a float sum that may land just below it.
    assert c.wall_at(3.0) == pytest.approx(T0 + 3.5)
    assert c.wall_at(3.01) == pytest.approx(T0 + 3.52)
    assert c.wall_at(25.0) is None


def test_final_latency_is_last_matching_final_minus_push_of_utterance_end() -> None:
    utts = [Utterance(1.0, 3.0, "a b"), Utterance(4.0, 8.0, "c d e f")]
    arrivals = [
        seg("s1", 1.1, 2.9, "a b", at=3.8),
        # utterance 2 split by a cap cut into two finals: done when the second arrives
        seg("s2", 4.0, 6.0, "c d", at=6.5),
        seg("s3", 6.0, 7.9, "e f", at=9.2),
        # a partial never counts as final
        seg("s3", 6.0, 7.9, "e f", at=8.5, final=False),
    ]
    lats = utterance_latencies(utts, arrivals, clock())
    assert lats[0].final_latency_s == pytest.approx(0.8)
    assert lats[1].final_latency_s == pytest.approx(1.2)
    assert lats[1].segment_ids == ["s2", "s3"]


def test_final_spanning_two_utterances_counts_for_both() -> None:
    utts = [Utterance(1.0, 3.0, "a b"), Utterance(3.4, 5.0, "c d")]
    arrivals = [seg("s1", 1.0, 5.0, "a b c d", at=6.0)]
    lats = utterance_latencies(utts, arrivals, clock())
    assert [v.final_latency_s for v in lats] == pytest.approx([3.0, 1.0])


def test_unmatched_and_punctuation_only_finals() -> None:
    utts = [Utterance(1.0, 3.0, "a b")]
    arrivals = [
        seg("s1", 1.0, 3.0, "a b", at=4.0),
        seg("s2", 1.0, 3.0, " .", at=9.0),  # carries no word: neither match nor latency
        seg("s3", 10.0, 11.0, "Thank you.", at=12.0),  # speech where nobody spoke
    ]
    assert [f.segment_id for f in match_finals(utts, arrivals)[0]] == ["s1"]
    assert [f.segment_id for f in unmatched_finals(utts, arrivals)] == ["s3"]
    assert utterance_latencies(utts, arrivals, clock())[0].final_latency_s == pytest.approx(1.0)


def test_missing_final_gives_no_latency() -> None:
    lats = utterance_latencies([Utterance(1.0, 3.0, "a b")], [], clock())
    assert lats[0].final_latency_s is None
    assert lats[0].first_partial_latency_s is None


def test_stereo_matches_per_channel() -> None:
    utts = [Utterance(1.0, 3.0, "hello", channel=0), Utterance(1.5, 3.5, "hi", channel=1)]
    arrivals = [seg("a", 1.0, 3.0, "hello", at=4.0, ch=0), seg("b", 1.5, 3.5, "hi", at=5.0, ch=1)]
    matched = match_finals(utts, arrivals)
    assert [[f.segment_id for f in m] for m in matched] == [["a"], ["b"]]


def test_first_partial_must_reach_into_the_utterance() -> None:
    utts = [Utterance(1.0, 3.0, "a b"), Utterance(3.4, 6.0, "c d")]
    arrivals = [
        # one segment for both utterances; its first partial covers only the first one
        seg("s1", 1.0, 2.0, "a", at=2.5, final=False),
        seg("s1", 1.0, 4.5, "a b c", at=4.9, final=False),
        seg("s1", 1.0, 6.0, "a b c d", at=7.0),
    ]
    lats = utterance_latencies(utts, arrivals, clock())
    assert lats[0].first_partial_latency_s == pytest.approx(1.5)
    assert lats[1].first_partial_latency_s == pytest.approx(1.5)


def test_normalize_text() -> None:
    assert normalize_text("Good-bye, World! I'm at seven thirty.") == "good bye world i am at 730"
    assert normalize_text("nineteen eighty two") == normalize_text("1982")


def test_word_errors_pool_channels() -> None:
    errors = word_errors(["red green blue", "cyan pink"], ["red green glue", "cyan pink gold"])
    assert (errors.substitutions, errors.deletions, errors.insertions) == (1, 0, 1)
    assert errors.reference_words == 5
    assert errors.errors == 2
    assert errors.wer == pytest.approx(2 / 5)
    assert word_errors(["a b"], [""]).wer == 1.0


def test_errors_per_utterance_charges_each_error_once() -> None:
    utts = ["red green blue", "cyan pink", "gold"]
    # "blue" -> "glue" (utterance 0), "pink" deleted (1), "grey" inserted after "gold" (2).
    assert errors_per_utterance(utts, "red green glue cyan gold grey") == [1, 1, 1]
    assert errors_per_utterance(utts, "") == [3, 2, 1]
    assert errors_per_utterance(utts, "red green blue cyan pink gold") == [0, 0, 0]


def _one_session_results(wer_runs: list[float]) -> dict:
    session = {
        "file": "f",
        "channels": 1,
        "duration_s": 10.0,
        "utterances": 3,
        "final_latency_s": {"p50": 1.0, "p95": 1.5, "max": 1.6},
        "first_partial_latency_s": {"p50": 1.2, "p95": 1.4},
        "wer_streaming": {"wer": 0.2},
        "decodes": 9,
        "decodes_per_final": 3.0,
        "utterances_without_final": 0,
    }
    median = sorted(wer_runs)[len(wer_runs) // 2]
    offline = {"files": {"f": {"wer": {"wer": median}, "wer_runs": wer_runs}}}
    return {"runs": [{"n": 1, "sessions": [session]}], "offline": offline}


def test_files_table_shows_the_spread_of_a_sampling_offline_baseline() -> None:
    from bench.report import files_table

    varied = files_table(_one_session_results([0.156, 0.279, 0.361]))
    assert "27.9% (15.6%-36.1%)" in varied and "-7.9" in varied
    steady = files_table(_one_session_results([0.1, 0.1]))
    assert "10.0%" in steady and "%-" not in steady
