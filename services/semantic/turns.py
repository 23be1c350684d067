"""Group final segments into speaker turns that go partial -> final, one open turn per speaker.

Rules (issue 16), applied in the order segments arrive:
- A segment extends its speaker's open turn when it starts less than `turn_gap_s` after
  that turn's end; otherwise the open turn is final and the segment starts a new turn.
- A turn is final when a segment of another speaker starts at or after its end (the
  floor changed), or when `turn_gap_s` passes without its speaker, or at session end;
  "passes" as heard on its own speaker's track, or on the audio clock plus `track_lag_s`.

Each channel's finals arrive when that channel pauses, so another speaker's segments may
arrive out of start order and overlap in time; per-speaker open turns keep them apart.
A final of speaker B that starts after A's turn ends does not close A's turn at once:
A's track may still be decoding a final that starts before B took the floor (measured:
the customer's "What is the reference number?" arriving after the agent's reply). The
floor change is held (`floor`) until A's track is heard past it (`heard`: A's own finals,
or `advance`, which the worker calls with the position every track has reached), or
until A's next final starts after it.
A turn keeps its segments (id, speaker, times, text) rather than only joined text, so a
later speaker relabel (diarization) can regroup open turns and a refined text can replace
the joined one without losing which segments a turn covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.schemas import Segment, Turn

# Mono sessions without diarization carry no speaker: they are one speaker.
MONO_SPEAKER = "spk_0"


def speaker_of(segment: Segment) -> str:
    return segment.speaker_id or MONO_SPEAKER


def turn_id(first_segment_id: str) -> str:
    """A turn's id is a function of its first segment's id, so a takeover re-derives it."""
    return f"turn:{first_segment_id}"


@dataclass(slots=True)
class SegmentPart:
    """The part of a final segment a turn needs."""

    id: str
    speaker_id: str
    start: float
    end: float
    text: str

    def to_json(self) -> list[Any]:
        return [self.id, self.speaker_id, self.start, self.end, self.text]

    @classmethod
    def from_json(cls, data: list[Any]) -> SegmentPart:
        return cls(str(data[0]), str(data[1]), float(data[2]), float(data[3]), str(data[4]))

    @classmethod
    def of(cls, segment: Segment) -> SegmentPart:
        return cls(
            segment.id, speaker_of(segment), segment.start, segment.end, segment.text.strip()
        )


@dataclass(frozen=True, slots=True)
class TurnRevision:
    """One published state of a turn, with the segment texts annotation maps back to."""

    turn: Turn
    parts: tuple[SegmentPart, ...]


@dataclass(slots=True)
class OpenTurn:
    """A turn still growing; `revision` counts its published updates."""

    id: str
    speaker_id: str
    segments: list[SegmentPart] = field(default_factory=list)
    revision: int = 0

    @property
    def start(self) -> float:
        return min(s.start for s in self.segments)

    @property
    def end(self) -> float:
        return max(s.end for s in self.segments)

    def snapshot(self, *, final: bool) -> TurnRevision:
        """The turn as published now; every call is a new revision."""
        self.revision += 1
        turn = Turn(
            id=self.id,
            speaker_id=self.speaker_id,
            start=self.start,
            end=self.end,
            text=" ".join(s.text for s in self.segments if s.text),
            segment_ids=[s.id for s in self.segments],
            partial=not final,
            revision=self.revision,
        )
        return TurnRevision(turn, tuple(self.segments))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "speaker_id": self.speaker_id,
            "segments": [s.to_json() for s in self.segments],
            "revision": self.revision,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpenTurn:
        return cls(
            id=str(data["id"]),
            speaker_id=str(data["speaker_id"]),
            segments=[SegmentPart.from_json(s) for s in data["segments"]],
            revision=int(data["revision"]),
        )


class TurnTracker:
    """Open turns per speaker; every method returns the turn revisions it made, in order."""

    def __init__(
        self, turn_gap_s: float, state: dict[str, Any] | None = None, *, track_lag_s: float = 0.0
    ) -> None:
        self.turn_gap_s = turn_gap_s
        self.track_lag_s = track_lag_s
        self.open: dict[str, OpenTurn] = {}
        # Audio time known to have passed: the furthest segment end or `advance` seen.
        self.clock = 0.0
        # Per speaker: how far their track is known to be decoded (no final of theirs can
        # still start before it), and the earliest start of another speaker's segment
        # after their open turn ended (the floor change waiting to close it).
        self.heard: dict[str, float] = {}
        self.floor: dict[str, float] = {}
        if state:
            self.clock = float(state["clock"])
            self.open = {
                t["speaker_id"]: OpenTurn.from_json(t) for t in state["open"]
            }  # insertion order is part of the state: it orders simultaneous finalizations
            self.heard = {str(k): float(v) for k, v in state.get("heard", {}).items()}
            self.floor = {str(k): float(v) for k, v in state.get("floor", {}).items()}

    def state(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "open": [t.to_json() for t in self.open.values()],
            "heard": self.heard,
            "floor": self.floor,
        }

    def holds(self, segment_id: str) -> bool:
        """Whether an open turn already holds this segment (a replayed final)."""
        return any(s.id == segment_id for t in self.open.values() for s in t.segments)

    def add(self, part: SegmentPart) -> list[TurnRevision]:
        """Apply one final segment: turns it closes first, then the turn it grows or opens."""
        changes: list[TurnRevision] = []
        self.clock = max(self.clock, part.end)
        # The floor changed: another speaker's open turn that ended before this segment
        # began is over, once that speaker's track is heard past this start.
        for speaker in [k for k, t in self.open.items() if k != part.speaker_id]:
            if part.start >= self.open[speaker].end:
                held = self.floor.get(speaker)
                self.floor[speaker] = part.start if held is None else min(held, part.start)
        current = self.open.get(part.speaker_id)
        taken = self.floor.get(part.speaker_id)
        if current is not None and (
            part.start - current.end >= self.turn_gap_s
            or (taken is not None and part.start >= taken)
        ):
            changes.append(self._close(part.speaker_id))
            current = None
        self._hear(part.speaker_id, part.end)
        if current is None:
            current = OpenTurn(id=turn_id(part.id), speaker_id=part.speaker_id)
            self.open[part.speaker_id] = current
        current.segments.append(part)
        changes.append(current.snapshot(final=False))
        changes.extend(self._close_quiet())
        return changes

    def advance(self, audio_time_s: float) -> list[TurnRevision]:
        """Every speaker's track is decoded up to `audio_time_s`: close the turns whose
        speaker stayed quiet or lost the floor before it."""
        self.clock = max(self.clock, audio_time_s)
        for speaker in self.open:
            self._hear(speaker, audio_time_s)
        return self._close_quiet()

    def hear(self, speaker: str, audio_time_s: float) -> list[TurnRevision]:
        """`speaker`'s track is decoded up to `audio_time_s` (e.g. a final without text)."""
        self.clock = max(self.clock, audio_time_s)
        self._hear(speaker, audio_time_s)
        return self._close_quiet()

    def _hear(self, speaker: str, audio_time_s: float) -> None:
        self.heard[speaker] = max(self.heard.get(speaker, 0.0), audio_time_s)

    def finish(self) -> list[TurnRevision]:
        """The session ended: every open turn is final, earliest first."""
        order = sorted(self.open.values(), key=lambda t: (t.start, t.speaker_id))
        return [self._close(t.speaker_id) for t in order]

    def _close_quiet(self) -> list[TurnRevision]:
        return [self._close(k) for k in [k for k in self.open if self._over(k)]]

    def _over(self, speaker: str) -> bool:
        """Its speaker stayed quiet `turn_gap_s`, or another speaker took the floor: known
        from its own track, or from the audio clock with the `track_lag_s` margin."""
        heard = self.heard.get(speaker, 0.0)
        quiet_from = self.open[speaker].end + self.turn_gap_s
        if heard >= quiet_from or self.clock >= quiet_from + self.track_lag_s:
            return True
        taken = self.floor.get(speaker)
        return taken is not None and (heard >= taken or self.clock >= taken + self.track_lag_s)

    def _close(self, speaker: str) -> TurnRevision:
        self.floor.pop(speaker, None)
        return self.open.pop(speaker).snapshot(final=True)
