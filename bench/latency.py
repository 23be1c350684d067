"""Match segment events to reference utterances and turn arrival times into latencies (pure)."""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# A final belongs to an utterance when their audio overlaps by at least this much (or by
# half the utterance, for very short ones). Word timestamps are ~20 ms granular and a
# neighbouring utterance is >= 0.3 s away in every fixture, so 0.15 s separates them.
MIN_OVERLAP_S = 0.15
# A partial counts as "for" an utterance only once its words reach into that utterance;
# a segment that spans two utterances shows the first one's words first.
_PARTIAL_REACH_S = 0.1
_WORD = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class Utterance:
    """One reference utterance: audio time span, text, and its channel (None: mono)."""

    start_s: float
    end_s: float
    text: str
    channel: int | None = None


@dataclass(frozen=True, slots=True)
class SegmentArrival:
    """A partial_segment or segment_finalized as the consumer received it."""

    segment_id: str
    start_s: float
    end_s: float
    text: str
    channel: int | None
    final: bool
    arrived_at: float  # wall clock (time.time()) when the consumer read it
    decodes: int = 0  # asr.decodes of the session when the segment was made


@dataclass(frozen=True, slots=True)
class UtteranceLatency:
    """Latencies of one reference utterance; None where no matching final arrived."""

    index: int
    channel: int | None
    start_s: float
    end_s: float
    final_latency_s: float | None
    first_partial_latency_s: float | None
    segment_ids: list[str] = field(default_factory=list)


class PushClock:
    """When (wall clock) the producer had pushed the audio up to a given audio time."""

    def __init__(self, marks: Iterable[tuple[float, float]]) -> None:
        ordered = sorted(marks)
        self._audio_s = [audio_s for audio_s, _ in ordered]
        self._wall = [wall for _, wall in ordered]

    def wall_at(self, audio_s: float) -> float | None:
        """Wall time of the first push that took the audio to `audio_s`; None if never."""
        # A 1 ms tolerance absorbs float sums of frame durations (20 ms frames).
        i = bisect.bisect_left(self._audio_s, audio_s - 1e-3)
        return self._wall[i] if i < len(self._wall) else None


def overlap_s(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Length of the intersection of two time spans (0 when disjoint)."""
    return max(0.0, min(a_end, b_end) - max(a_start, b_start))


def has_words(text: str) -> bool:
    return _WORD.search(text) is not None


def belongs_to(seg: SegmentArrival, utt: Utterance, min_overlap_s: float = MIN_OVERLAP_S) -> bool:
    """Same channel, some word in the text (not only punctuation), enough audio in common."""
    if seg.channel != utt.channel or not has_words(seg.text):
        return False
    need = min(min_overlap_s, 0.5 * (utt.end_s - utt.start_s))
    return overlap_s(seg.start_s, seg.end_s, utt.start_s, utt.end_s) >= need


def match_finals(
    utterances: Sequence[Utterance], arrivals: Iterable[SegmentArrival]
) -> list[list[SegmentArrival]]:
    """For each utterance, the finals that carry (part of) its words.

    An utterance split into several finals matches all of them; a final spanning two
    utterances matches both.
    """
    finals = [a for a in arrivals if a.final]
    return [[f for f in finals if belongs_to(f, utt)] for utt in utterances]


def unmatched_finals(
    utterances: Sequence[Utterance], arrivals: Iterable[SegmentArrival]
) -> list[SegmentArrival]:
    """Finals with text that overlap no reference utterance (inserted speech)."""
    return [
        a
        for a in arrivals
        if a.final and has_words(a.text) and not any(belongs_to(a, u) for u in utterances)
    ]


def utterance_latencies(
    utterances: Sequence[Utterance], arrivals: Sequence[SegmentArrival], clock: PushClock
) -> list[UtteranceLatency]:
    """Final and first-partial latency of every reference utterance.

    Final: arrival of the last final carrying the utterance's words minus the wall time
    at which its end (`end_s`) had been pushed. First partial: arrival of the first event
    (partial or final) of one of those segments whose words reach into the utterance,
    minus the wall time at which its start (`start_s`) had been pushed.
    """
    out = []
    for index, (utt, finals) in enumerate(
        zip(utterances, match_finals(utterances, arrivals), strict=True)
    ):
        ids = {f.segment_id for f in finals}
        final_latency = first_latency = None
        end_pushed = clock.wall_at(utt.end_s)
        if finals and end_pushed is not None:
            final_latency = max(f.arrived_at for f in finals) - end_pushed
        firsts = [
            a.arrived_at
            for a in arrivals
            if a.segment_id in ids
            and has_words(a.text)
            and a.end_s > utt.start_s + _PARTIAL_REACH_S
        ]
        start_pushed = clock.wall_at(utt.start_s)
        if firsts and start_pushed is not None:
            first_latency = min(firsts) - start_pushed
        out.append(
            UtteranceLatency(
                index=index,
                channel=utt.channel,
                start_s=utt.start_s,
                end_s=utt.end_s,
                final_latency_s=final_latency,
                first_partial_latency_s=first_latency,
                segment_ids=sorted(ids),
            )
        )
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation (numpy's default); None if empty."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, p50, p95, max and mean of `values` (seconds), rounded to milliseconds."""

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return {
        "n": len(values),
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "max": r(max(values) if values else None),
        "mean": r(sum(values) / len(values) if values else None),
    }
