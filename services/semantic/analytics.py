"""Running conversation analytics: talk time and ratio, turns, monologues, interruptions, latency.

Talk time is the sum of a speaker's final segment durations. The asr stage sets a
segment's bounds to its first word's start and last word's end, so this already is the
word span: VAD padding and the silence around an utterance are not counted, and a speaker
who talks in many short segments is not inflated by per-segment padding. Pauses inside a
segment (under the VAD's 300 ms) are counted, as a listener would.

Interruption: a turn that starts more than `interruption_tolerance_s` before the turn of
another speaker that was in progress ends. Turn ends grow and late finals of another
channel arrive out of order, so every change re-checks the turns it touches; a turn is
flagged at most once, which makes a planted overlap count exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.schemas import AnalyticsPayload, SpeakerStats, Turn

# Turns ending this long before the audio clock are dropped from the overlap checks: a
# final arrives at most the asr utterance cap (15 s) plus its decode after its audio.
_RETAIN_S = 60.0


@dataclass(slots=True)
class _TurnSpan:
    id: str
    speaker_id: str
    start: float
    end: float
    final: bool = False
    interrupter: bool = False


@dataclass(slots=True)
class _Speaker:
    talk_s: float = 0.0
    turns: int = 0
    longest_s: float = 0.0
    initiated: int = 0
    received: int = 0
    latency_sum_s: float = 0.0
    latency_count: int = 0


# A speaker's accumulators in the order the checkpoint lists them.
_SPEAKER_FIELDS = (
    "talk_s",
    "turns",
    "longest_s",
    "initiated",
    "received",
    "latency_sum_s",
    "latency_count",
)


class ConversationAnalytics:
    """Per-speaker accumulators plus the recent turns that overlap checks need."""

    def __init__(self, tolerance_s: float, state: dict[str, Any] | None = None) -> None:
        self.tolerance_s = tolerance_s
        self.speakers: dict[str, _Speaker] = {}
        self.recent: list[_TurnSpan] = []
        self.turn_count = 0
        if state:
            self.turn_count = int(state["turn_count"])
            for name, values in state["speakers"].items():
                self.speakers[name] = _Speaker(**dict(zip(_SPEAKER_FIELDS, values, strict=True)))
            self.recent = [_TurnSpan(*t) for t in state["recent"]]

    def state(self) -> dict[str, Any]:
        return {
            "turn_count": self.turn_count,
            "speakers": {
                name: [getattr(s, f) for f in _SPEAKER_FIELDS] for name, s in self.speakers.items()
            },
            "recent": [
                [t.id, t.speaker_id, t.start, t.end, t.final, t.interrupter] for t in self.recent
            ],
        }

    def _speaker(self, name: str) -> _Speaker:
        return self.speakers.setdefault(name, _Speaker())

    def add_speech(self, speaker_id: str, duration_s: float) -> None:
        """A final segment of `speaker_id` lasting `duration_s`."""
        self._speaker(speaker_id).talk_s += max(0.0, duration_s)

    def on_turn(self, turn: Turn) -> None:
        """A turn was opened, grew, or went final."""
        speaker = turn.speaker_id or ""
        span = next((t for t in self.recent if t.id == turn.id), None)
        stats = self._speaker(speaker)
        if span is None:
            span = _TurnSpan(turn.id, speaker, turn.start, turn.end)
            self._record_latency(span)
            self.recent.append(span)
            stats.turns += 1
            self.turn_count += 1
            self._check_interrupter(span)
        span.end = max(span.end, turn.end)
        span.final = not turn.partial
        stats.longest_s = max(stats.longest_s, span.end - span.start)
        self._check_interrupted_by_others(span)

    def prune(self, clock: float) -> None:
        """Forget final turns too old to overlap anything still to come."""
        self.recent = [t for t in self.recent if not t.final or t.end >= clock - _RETAIN_S]

    def _interrupts(self, later: _TurnSpan, earlier: _TurnSpan) -> bool:
        return (
            later.speaker_id != earlier.speaker_id
            and earlier.start < later.start
            and earlier.end - later.start > self.tolerance_s
        )

    def _flag(self, interrupter: _TurnSpan, interrupted: _TurnSpan) -> None:
        interrupter.interrupter = True
        self._speaker(interrupter.speaker_id).initiated += 1
        self._speaker(interrupted.speaker_id).received += 1

    def _check_interrupter(self, span: _TurnSpan) -> None:
        # Of several turns in progress, the floor belonged to the one that began last.
        held = [t for t in self.recent if t is not span and self._interrupts(span, t)]
        if held:
            self._flag(span, max(held, key=lambda t: (t.start, t.speaker_id)))

    def _check_interrupted_by_others(self, span: _TurnSpan) -> None:
        for other in self.recent:
            if not other.interrupter and self._interrupts(other, span):
                self._flag(other, span)

    def _record_latency(self, span: _TurnSpan) -> None:
        """Gap from the other speaker's last turn to this one, when this one answers it."""
        before = [t for t in self.recent if t.start < span.start]
        others = [t for t in before if t.speaker_id != span.speaker_id]
        if not others:
            return
        answered = max(others, key=lambda t: (t.start, t.speaker_id))
        if any(t.speaker_id == span.speaker_id and t.start > answered.start for t in before):
            return  # this speaker already answered that turn
        gap = span.start - answered.end
        if gap < -self.tolerance_s:
            return  # an interruption, not a response
        stats = self._speaker(span.speaker_id)
        stats.latency_sum_s += max(0.0, gap)
        stats.latency_count += 1

    def snapshot(self, audio_time_s: float, *, turns_final: bool) -> AnalyticsPayload:
        total = sum(s.talk_s for s in self.speakers.values())
        speakers = []
        for name in sorted(self.speakers):
            s = self.speakers[name]
            latency = s.latency_sum_s / s.latency_count if s.latency_count else None
            speakers.append(
                SpeakerStats(
                    speaker_id=name,
                    talk_time_s=round(s.talk_s, 3),
                    talk_ratio=round(s.talk_s / total, 4) if total else 0.0,
                    turn_count=s.turns,
                    longest_monologue_s=round(s.longest_s, 3),
                    interruptions=s.initiated,
                    mean_response_latency_s=round(latency, 3) if latency is not None else None,
                    interruptions_initiated=s.initiated,
                    interruptions_received=s.received,
                )
            )
        return AnalyticsPayload(
            speakers=speakers,
            turn_count=self.turn_count,
            turns_final=turns_final,
            audio_time_s=round(audio_time_s, 3),
            completeness={"turns_final": turns_final},
        )
