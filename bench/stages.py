"""Stage lags and costs from a session's own events: enrich and semantic behind their finals.

Every lag is a difference of two events' `emitted_at` (each publishing stage's wall
clock at publish), never of when the benchmark's follower read them, so a slow reader
cannot inflate it. All workers run on the benchmark machine, so their clocks agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.latency import summarize
from bench.session import SessionRecord
from shared.schemas import (
    AnalyticsSnapshot,
    Done,
    Event,
    SegmentEnriched,
    SegmentFinalized,
    SemanticUpdate,
)

# Issue 15: enrich lag (final published -> segment_enriched published) at real-time pace.
ENRICH_LAG_P50_TARGET_S = 0.150
ENRICH_LAG_P95_TARGET_S = 0.300
# Issue 16: a risk tag or an interruption reaches consumers within 200 ms of its final.
SEMANTIC_ALERT_TARGET_S = 0.200
TARGETS = {
    "enrich_lag_p50_s": ENRICH_LAG_P50_TARGET_S,
    "enrich_lag_p95_s": ENRICH_LAG_P95_TARGET_S,
    "risk_tag_lag_p95_s": SEMANTIC_ALERT_TARGET_S,
    "interruption_lag_p95_s": SEMANTIC_ALERT_TARGET_S,
}


@dataclass(frozen=True, slots=True)
class SessionEvents:
    """One session's recorded stage events (in seq order) and its audio length."""

    events: Sequence[Event]
    audio_s: float


@dataclass
class EnrichCheck:
    """Enrich lag per final with text, and finals not enriched exactly once."""

    lags_s: list[float] = field(default_factory=list)
    finals: int = 0
    # Finals with text and no segment_enriched; finals with more than one (id -> count).
    missing: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    # segment_enriched events naming no final with text of the session.
    unexpected: list[str] = field(default_factory=list)


@dataclass
class SemanticCheck:
    """Lag from each final with text to the first semantic_update whose turn holds it."""

    lags_s: list[float] = field(default_factory=list)
    # The subset whose first update raises a risk tag its turn did not carry before (the
    # alert a consumer acts on), and the wider one whose first update carries any tag.
    risk_lags_s: list[float] = field(default_factory=list)
    risk_tagged_lags_s: list[float] = field(default_factory=list)
    without_update: list[str] = field(default_factory=list)
    # Per analytics snapshot that raised the interruption count: lag from the earliest
    # final published since the previous snapshot (an upper bound; the interrupting
    # final is one of those).
    interruption_lags_s: list[float] = field(default_factory=list)


def _text_finals(events: Iterable[Event]) -> list[SegmentFinalized]:
    return [e for e in events if isinstance(e, SegmentFinalized) and e.payload.text.strip()]


def enrich_check(events: Sequence[Event]) -> EnrichCheck:
    """Match each final with text to its segment_enriched (payload.segment_id = final id)."""
    finals = _text_finals(events)
    enrichments = [e for e in events if isinstance(e, SegmentEnriched)]
    counts = Counter(e.payload.segment_id for e in enrichments)
    first: dict[str, SegmentEnriched] = {}
    for e in enrichments:
        first.setdefault(e.payload.segment_id, e)
    check = EnrichCheck(finals=len(finals))
    final_ids = set()
    for f in finals:
        final_ids.add(f.id)
        enriched = first.get(f.id)
        if enriched is None:
            check.missing.append(f.id)
            continue
        check.lags_s.append(enriched.emitted_at - f.emitted_at)
        if counts[f.id] > 1:
            check.duplicated[f.id] = counts[f.id]
    check.unexpected = sorted(sid for sid in counts if sid not in final_ids)
    return check


def semantic_check(events: Sequence[Event]) -> SemanticCheck:
    """Semantic lag per final with text, its risk-tag subset, and interruption lags."""
    check = SemanticCheck()
    # Per segment, the first update holding it and whether that update raised a tag.
    first_update: dict[str, tuple[SemanticUpdate, bool]] = {}
    turn_tags: dict[str, set[str]] = {}
    for e in events:
        if isinstance(e, SemanticUpdate):
            tags = set(e.payload.risk_tags)
            raised = bool(tags - turn_tags.get(e.id, set()))
            turn_tags[e.id] = tags
            for sid in e.payload.turn.segment_ids:
                first_update.setdefault(sid, (e, raised))
    for f in _text_finals(events):
        found = first_update.get(f.id)
        if found is None:
            check.without_update.append(f.id)
            continue
        update, raised = found
        lag = update.emitted_at - f.emitted_at
        check.lags_s.append(lag)
        if update.payload.risk_tags:
            check.risk_tagged_lags_s.append(lag)
        if raised:
            check.risk_lags_s.append(lag)
    check.interruption_lags_s = interruption_lags(events)
    return check


def interruption_lags(events: Sequence[Event]) -> list[float]:
    """For each snapshot whose interruption total grew: its emitted_at minus that of the
    earliest final with text published since the previous snapshot (else the latest one)."""
    lags: list[float] = []
    seen = 0
    latest: SegmentFinalized | None = None
    since_snapshot: list[SegmentFinalized] = []
    for e in events:
        if isinstance(e, SegmentFinalized) and e.payload.text.strip():
            latest = e
            since_snapshot.append(e)
        elif isinstance(e, AnalyticsSnapshot):
            total = sum(s.interruptions_initiated for s in e.payload.speakers)
            carrier = since_snapshot[0] if since_snapshot else latest
            if total > seen and carrier is not None:
                lags.extend([e.emitted_at - carrier.emitted_at] * (total - seen))
            seen = max(seen, total)
            since_snapshot = []
    return lags


def processing_s(events: Iterable[Event]) -> dict[str, float]:
    """`done.payload.processing_s` (seconds per stage); empty without a `done`."""
    for e in events:
        if isinstance(e, Done):
            return dict(e.payload.processing_s)
    return {}


def unfinished(events: Iterable[Event]) -> list[str]:
    """Stages `done` says had not finished the session (their worker was down too long)."""
    for e in events:
        if isinstance(e, Done):
            return list(e.payload.unfinished)
    return []


def stage_summary(sessions: Sequence[SessionEvents], pipeline: Sequence[str]) -> dict[str, Any]:
    """Stage lags, enrichment counts and processing per audio second over `sessions`.

    Sections of stages not in `pipeline` are None.
    """
    enrich = EnrichCheck()
    semantic = SemanticCheck()
    processing: Counter[str] = Counter()
    not_finished: list[str] = []
    for s in sessions:
        # Segment ids repeat across sessions: pooled ones are named `session/segment`.
        name = f"{s.events[0].session_id}/" if len(sessions) > 1 and s.events else ""
        e = enrich_check(s.events)
        enrich.lags_s += e.lags_s
        enrich.finals += e.finals
        enrich.missing += [name + i for i in e.missing]
        enrich.duplicated.update({name + i: n for i, n in e.duplicated.items()})
        enrich.unexpected += [name + i for i in e.unexpected]
        m = semantic_check(s.events)
        semantic.lags_s += m.lags_s
        semantic.risk_lags_s += m.risk_lags_s
        semantic.risk_tagged_lags_s += m.risk_tagged_lags_s
        semantic.without_update += [name + i for i in m.without_update]
        semantic.interruption_lags_s += m.interruption_lags_s
        processing.update(processing_s(s.events))
        not_finished += unfinished(s.events)
    # Only sessions whose `done` reported their processing time count as audio for it.
    audio_s = sum(s.audio_s for s in sessions if processing_s(s.events))
    return {
        "pipeline": list(pipeline),
        "enrich": _enrich_json(enrich) if "enrich" in pipeline else None,
        "semantic": _semantic_json(semantic) if "semantic" in pipeline else None,
        "processing_s": {stage: round(v, 3) for stage, v in sorted(processing.items())},
        "processing_per_audio_s": {
            stage: round(v / audio_s, 5) if audio_s else None
            for stage, v in sorted(processing.items())
        },
        "unfinished": sorted(set(not_finished)),
    }


def records_summary(records: Sequence[SessionRecord], pipeline: Sequence[str]) -> dict[str, Any]:
    """`stage_summary` of benchmark sessions (audio: each recording's duration)."""
    return stage_summary(
        [SessionEvents(r.stage_events, r.reference.duration_s) for r in records], pipeline
    )


def stages_line(summary: dict[str, Any]) -> str:
    """One printed line: enrich and semantic lag against their targets, cost per audio s."""
    parts = []
    if (enrich := summary["enrich"]) is not None:
        lag = enrich["lag_s"]
        once = (
            "yes"
            if enrich["exactly_once"]
            else (
                f"NO (missing {len(enrich['missing'])}, duplicated {len(enrich['duplicated'])}, "
                f"unexpected {len(enrich['unexpected'])})"
            )
        )
        parts.append(
            f"enrich lag p50 {_ms(lag['p50'])} p95 {_ms(lag['p95'])} "
            f"(targets {_ms(ENRICH_LAG_P50_TARGET_S)}/{_ms(ENRICH_LAG_P95_TARGET_S)}), "
            f"{enrich['enriched']}/{enrich['finals_with_text']} enriched, exactly once: {once}"
        )
    if (semantic := summary["semantic"]) is not None:
        lag, risk = semantic["lag_s"], semantic["risk_tag_lag_s"]
        inter = semantic["interruption_lag_s"]
        parts.append(
            f"semantic lag p50 {_ms(lag['p50'])} p95 {_ms(lag['p95'])}; risk tag raised "
            f"({risk['n']}) p95 {_ms(risk['p95'])} max {_ms(risk['max'])}, interruptions "
            f"({inter['n']}) p95 {_ms(inter['p95'])} max {_ms(inter['max'])} "
            f"(target {_ms(SEMANTIC_ALERT_TARGET_S)})"
        )
    cost = ", ".join(f"{k} {v:.4f}" for k, v in summary["processing_per_audio_s"].items())
    parts.append(f"processing s/audio s: {cost or '-'}")
    if summary["unfinished"]:
        parts.append(f"UNFINISHED stages: {', '.join(summary['unfinished'])}")
    return "; ".join(parts)


def _ms(seconds: float | int | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.0f} ms"


def _enrich_json(check: EnrichCheck) -> dict[str, Any]:
    lag = summarize(check.lags_s)
    return {
        "lag_s": lag,
        "finals_with_text": check.finals,
        "enriched": len(check.lags_s),
        "missing": check.missing,
        "duplicated": check.duplicated,
        "unexpected": check.unexpected,
        "exactly_once": not (check.missing or check.duplicated or check.unexpected),
        "meets_target": _under(lag["p50"], ENRICH_LAG_P50_TARGET_S)
        and _under(lag["p95"], ENRICH_LAG_P95_TARGET_S),
    }


def _semantic_json(check: SemanticCheck) -> dict[str, Any]:
    risk = summarize(check.risk_lags_s)
    interruption = summarize(check.interruption_lags_s)
    return {
        "lag_s": summarize(check.lags_s),
        "risk_tag_lag_s": risk,
        "risk_tagged_update_lag_s": summarize(check.risk_tagged_lags_s),
        "interruption_lag_s": interruption,
        "without_update": check.without_update,
        # None where no final raised a risk tag (had an interruption).
        "risk_tag_meets_target": _under(risk["p95"], SEMANTIC_ALERT_TARGET_S)
        if check.risk_lags_s
        else None,
        "interruption_meets_target": _under(interruption["p95"], SEMANTIC_ALERT_TARGET_S)
        if check.interruption_lags_s
        else None,
    }


def _under(value: float | int | None, limit: float) -> bool:
    return value is not None and value <= limit
