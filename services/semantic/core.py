"""The semantic stage's pure core: final segments in; turn, semantic and analytics events out.

Event ids and revisions (all deterministic, so a takeover re-derives them):
- `turn_updated`: id `turn:<first segment id>`; revision 1 when the turn opens, +1 per
  segment it grows by, +1 when it goes final (`partial: false`, the last revision).
- `semantic_update`: id `semantic:<turn id>`, revision = the turn revision it annotates;
  with `interim_updates` one per partial turn revision, always one for the final one.
- `analytics_snapshot`: id `analytics`, revision 1, 2, ... per snapshot; interim ones at
  most one per `analytics_interval_s` of audio time, the last (`turns_final`) at `finish`.

`state()` is everything the outputs depend on; a core rebuilt from it and fed the rest
of the inputs publishes exactly what an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from services.semantic.analytics import ConversationAnalytics
from services.semantic.annotate import Annotator, KeywordRanker
from services.semantic.context import ContextWindow
from services.semantic.settings import SemanticSettings
from services.semantic.turns import SegmentPart, TurnRevision, TurnTracker
from shared.schemas import (
    AnalyticsSnapshot,
    Segment,
    SemanticAnnotation,
    SemanticUpdate,
    TurnUpdated,
    is_final,
)

STAGE = "semantic"
STATE_VERSION = 1
ANALYTICS_ID = "analytics"

SemanticEvent = TurnUpdated | SemanticUpdate | AnalyticsSnapshot
_E = TypeVar("_E", TurnUpdated, SemanticUpdate, AnalyticsSnapshot)


def semantic_id(turn_id: str) -> str:
    return f"semantic:{turn_id}"


@dataclass(frozen=True, slots=True)
class Output:
    """One event to publish, fully built; `emitted_at` is left for the publisher to set."""

    event: SemanticEvent

    @property
    def final(self) -> bool:
        """Whether nothing more will be published for this event's id."""
        return is_final(self.event)


class SemanticCore:
    """One session's semantic state: turns, annotations, context window and analytics."""

    def __init__(
        self,
        settings: SemanticSettings,
        session_id: str,
        state: dict[str, Any] | None = None,
        *,
        ranker: KeywordRanker | None = None,
    ) -> None:
        """`ranker` (the worker's loaded embedding model) is required when
        `settings.embeddings` is on; it is shared, stateless, and never checkpointed."""
        self.settings = settings
        self.session_id = session_id
        if settings.embeddings and ranker is None:
            raise ValueError(
                "semantic embeddings are on but no embedding model was given "
                "(SemanticHandler.prepare loads it)"
            )
        self._annotator = Annotator(
            settings.risk_terms(),
            settings.max_keywords,
            ranker if settings.embeddings else None,
        )
        st = state or {}
        if st and st.get("version") != STATE_VERSION:
            raise ValueError(f"semantic state version {st.get('version')!r} is not supported")
        self._turns = TurnTracker(
            settings.turn_gap_s, st.get("turns"), track_lag_s=settings.track_lag_s
        )
        self._analytics = ConversationAnalytics(
            settings.interruption_tolerance_s, st.get("analytics")
        )
        self._context = ContextWindow(
            settings.context_turns, settings.context_seconds, st.get("context")
        )
        self._ledger = int(st.get("ledger", 0))
        self._analytics_revision = int(st.get("analytics_revision", 0))
        at = st.get("analytics_at")
        self._analytics_at: float | None = None if at is None else float(at)
        self._analytics_dirty = bool(st.get("analytics_dirty", False))
        self._finished = bool(st.get("finished", False))

    # --- inputs -------------------------------------------------------------------------

    def on_final(self, segment: Segment) -> list[Output]:
        """A `segment_finalized` payload, in event-stream order."""
        if self._finished or segment.partial:
            return []
        part = SegmentPart.of(segment)
        if not part.text or self._turns.holds(part.id) or self._context.holds(part.id):
            # A noise-only final (or one already applied) still says how far its track got.
            out = self._publish_turns(self._turns.hear(part.speaker_id, segment.end))
            out.extend(self._interim_snapshot())
            return out
        self._analytics.add_speech(part.speaker_id, part.end - part.start)
        self._analytics_dirty = True
        out = self._publish_turns(self._turns.add(part))
        out.extend(self._interim_snapshot())
        return out

    def advance(self, audio_time_s: float) -> list[Output]:
        """Audio time reached `audio_time_s`: close quiet turns, send a held snapshot."""
        if self._finished:
            return []
        out = self._publish_turns(self._turns.advance(audio_time_s))
        out.extend(self._interim_snapshot())
        return out

    def finish(self) -> list[Output]:
        """The session ended: every turn goes final, then the last analytics snapshot."""
        if self._finished:
            return []
        out = self._publish_turns(self._turns.finish())
        self._finished = True
        out.append(self._snapshot(turns_final=True))
        return out

    # --- views --------------------------------------------------------------------------

    def render_context(self) -> str:
        """The LLM context window of the final turns so far."""
        return self._context.render()

    @property
    def finished(self) -> bool:
        return self._finished

    def state(self) -> dict[str, Any]:
        """JSON-serializable checkpoint from which `SemanticCore(..., state=)` resumes."""
        return {
            "version": STATE_VERSION,
            "turns": self._turns.state(),
            "analytics": self._analytics.state(),
            "context": self._context.state(),
            "ledger": self._ledger,
            "analytics_revision": self._analytics_revision,
            "analytics_at": self._analytics_at,
            "analytics_dirty": self._analytics_dirty,
            "finished": self._finished,
        }

    # --- outputs ------------------------------------------------------------------------

    def _publish_turns(self, revisions: list[TurnRevision]) -> list[Output]:
        out: list[Output] = []
        for revision in revisions:
            turn = revision.turn
            out.append(Output(self._event(TurnUpdated, turn.id, turn.revision, turn)))
            self._analytics.on_turn(turn)
            annotation = self._annotate(revision)
            if annotation is not None:
                out.append(
                    Output(
                        self._event(SemanticUpdate, semantic_id(turn.id), turn.revision, annotation)
                    )
                )
        self._analytics.prune(self._turns.clock)
        return out

    def _annotate(self, revision: TurnRevision) -> SemanticAnnotation | None:
        turn = revision.turn
        if turn.partial and not self.settings.interim_updates:
            return None
        earlier = self._context.of_speaker(turn.speaker_id, before=turn.id)
        if not turn.partial:
            self._context.add(turn)
        annotation = self._annotator.annotate(
            revision, earlier, context_size=len(self._context), ledger_before=self._ledger
        )
        if not turn.partial:
            # The ledger holds commitments of final turns only: a partial turn may still grow.
            self._ledger = annotation.commitment_ledger_size
        return annotation

    def _interim_snapshot(self) -> list[Output]:
        clock = self._turns.clock
        due = (
            self._analytics_at is None
            or clock - self._analytics_at >= self.settings.analytics_interval_s
        )
        if not (self._analytics_dirty and due):
            return []
        return [self._snapshot(turns_final=False)]

    def _snapshot(self, *, turns_final: bool) -> Output:
        self._analytics_revision += 1
        self._analytics_at = self._turns.clock
        self._analytics_dirty = False
        payload = self._analytics.snapshot(self._turns.clock, turns_final=turns_final)
        return Output(
            self._event(AnalyticsSnapshot, ANALYTICS_ID, self._analytics_revision, payload)
        )

    def _event(self, kind: type[_E], entity_id: str, revision: int, payload: Any) -> _E:
        return kind(
            session_id=self.session_id,
            id=entity_id,
            revision=revision,
            stage=STAGE,
            payload=payload,
        )
