"""Stage lags from synthetic event lists: emitted_at differences, exactly-once enrichment."""

from __future__ import annotations

import pytest

from bench.report import processing_table, stages_table
from bench.run import parse_args, worker_env
from bench.stages import (
    TARGETS,
    SessionEvents,
    enrich_check,
    interruption_lags,
    semantic_check,
    stage_summary,
)
from shared.schemas import (
    AnalyticsPayload,
    AnalyticsSnapshot,
    Done,
    DonePayload,
    EnrichmentPayload,
    Event,
    Segment,
    SegmentEnriched,
    SegmentFinalized,
    SemanticAnnotation,
    SemanticUpdate,
    SpeakerStats,
    Turn,
)
from shared.settings import DEFAULT_PIPELINE

T0 = 1_700_000_000.0
SID = "s1"


def final(seg_id: str, at: float, text: str = "hello there", sid: str = SID) -> SegmentFinalized:
    payload = Segment(id=seg_id, start=0.0, end=1.0, text=text, partial=False)
    return SegmentFinalized(session_id=sid, id=seg_id, emitted_at=T0 + at, payload=payload)


def enriched(seg_id: str, at: float) -> SegmentEnriched:
    return SegmentEnriched(
        session_id=SID,
        id=f"enriched:{seg_id}",
        emitted_at=T0 + at,
        payload=EnrichmentPayload(segment_id=seg_id),
    )


def update(seg_ids: list[str], at: float, risk: list[str] | None = None) -> SemanticUpdate:
    turn = Turn(id=f"turn:{seg_ids[0]}", speaker_id="spk_0", start=0, end=1, text="x",
                segment_ids=seg_ids)  # fmt: skip
    return SemanticUpdate(
        session_id=SID,
        id=f"semantic:{turn.id}",
        revision=len(seg_ids),
        emitted_at=T0 + at,
        payload=SemanticAnnotation(turn=turn, risk_tags=risk or []),
    )


def snapshot(at: float, interruptions: int) -> AnalyticsSnapshot:
    speakers = [SpeakerStats(speaker_id="spk_1", interruptions_initiated=interruptions)]
    return AnalyticsSnapshot(
        session_id=SID,
        id="analytics",
        emitted_at=T0 + at,
        payload=AnalyticsPayload(speakers=speakers),
    )


def done(at: float, processing: dict[str, float]) -> Done:
    return Done(
        session_id=SID, id="done", emitted_at=T0 + at, payload=DonePayload(processing_s=processing)
    )


def test_enrich_lag_is_the_difference_of_emitted_at() -> None:
    events: list[Event] = [
        final("a", 1.0),
        final("b", 3.0),
        enriched("a", 1.12),
        enriched("b", 3.4),
    ]
    check = enrich_check(events)
    assert check.lags_s == pytest.approx([0.12, 0.4])
    assert check.finals == 2
    assert not (check.missing or check.duplicated or check.unexpected)


def test_missing_duplicate_and_unexpected_enrichments_are_reported() -> None:
    events: list[Event] = [
        final("a", 1.0),
        final("b", 2.0),
        final("c", 3.0),
        final("silence", 4.0, text="  "),
        enriched("a", 1.1),
        enriched("a", 1.5),  # a takeover that republished it
        enriched("c", 3.2),
        enriched("ghost", 3.3),
    ]
    check = enrich_check(events)
    assert check.missing == ["b"]
    assert check.duplicated == {"a": 2}
    assert check.unexpected == ["ghost"]
    # The lag is measured to the first enrichment; a final without text expects none.
    assert check.lags_s == pytest.approx([0.1, 0.2])


def test_semantic_lag_uses_the_first_update_holding_the_final() -> None:
    events: list[Event] = [
        final("a", 1.0),
        update(["a"], 1.05),
        final("b", 2.0),
        update(["a", "b"], 2.3, risk=["pricing"]),
        update(["a", "b"], 5.0, risk=["pricing"]),  # the turn going final, much later
        final("c", 6.0),
    ]
    check = semantic_check(events)
    assert check.lags_s == pytest.approx([0.05, 0.3])
    assert check.risk_lags_s == pytest.approx([0.3])
    assert check.risk_tagged_lags_s == pytest.approx([0.3])
    assert check.without_update == ["c"]


def test_risk_subset_holds_the_finals_that_raise_a_tag_new_to_their_turn() -> None:
    events: list[Event] = [
        final("a", 1.0),
        update(["a"], 1.5),
        final("b", 2.0),
        update(["b"], 2.05, risk=["churn_risk"]),
        final("c", 3.0),
        update(["b", "c"], 3.08, risk=["churn_risk"]),  # the tag was already on the turn
        final("d", 4.0),
        update(["b", "c", "d"], 4.12, risk=["churn_risk", "pricing"]),
    ]
    check = semantic_check(events)
    assert check.lags_s == pytest.approx([0.5, 0.05, 0.08, 0.12])
    assert check.risk_lags_s == pytest.approx([0.05, 0.12])
    assert check.risk_tagged_lags_s == pytest.approx([0.05, 0.08, 0.12])


def test_interruption_lag_counts_from_the_earliest_final_since_the_last_snapshot() -> None:
    events: list[Event] = [
        final("a", 1.0),
        snapshot(1.1, 0),
        final("b", 2.0),
        final("c", 2.5),
        snapshot(2.6, 1),
        snapshot(3.0, 1),  # no new interruption
        final("d", 4.0),
        snapshot(4.25, 3),  # two at once
    ]
    assert interruption_lags(events) == pytest.approx([0.6, 0.25, 0.25])


def test_summary_pools_sessions_and_divides_processing_by_audio() -> None:
    one: list[Event] = [final("a", 1.0), enriched("a", 1.1), update(["a"], 1.2, ["pricing"])]
    one.append(done(2.0, {"asr": 3.0, "enrich": 0.5}))
    other = [final("a", 1.0, sid="s2"), update(["a"], 1.4), done(2.0, {"asr": 1.0, "enrich": 0.3})]
    summary = stage_summary(
        [
            SessionEvents(one, audio_s=10.0),
            SessionEvents(other, audio_s=30.0),
            # Timed out before `done`: its audio has no processing time to go with.
            SessionEvents([final("z", 1.0, sid="s3"), enriched("z", 1.1)], audio_s=100.0),
        ],
        ("ingest", "asr", "enrich", "semantic"),
    )
    assert summary["processing_per_audio_s"] == {"asr": pytest.approx(0.1), "enrich": 0.02}
    enrich = summary["enrich"]
    assert enrich["missing"] == ["s2/a"]
    assert enrich["exactly_once"] is False
    assert enrich["lag_s"]["n"] == 2 and enrich["lag_s"]["p50"] == pytest.approx(0.1)
    assert enrich["meets_target"] is True
    semantic = summary["semantic"]
    assert semantic["lag_s"]["n"] == 2 and semantic["lag_s"]["max"] == pytest.approx(0.4)
    assert semantic["without_update"] == ["s3/z"]
    assert semantic["risk_tag_lag_s"]["max"] == pytest.approx(0.2)
    assert semantic["risk_tag_meets_target"] is True
    assert semantic["interruption_meets_target"] is None


def test_summary_leaves_out_stages_not_in_the_pipeline_and_flags_slow_enrich() -> None:
    events: list[Event] = [final("a", 1.0), enriched("a", 1.2), final("b", 2.0), enriched("b", 2.5)]
    asr_only = stage_summary([SessionEvents(events, audio_s=5.0)], ("ingest", "asr"))
    assert asr_only["enrich"] is None and asr_only["semantic"] is None
    full = stage_summary([SessionEvents(events, audio_s=5.0)], ("ingest", "asr", "enrich"))
    # p50 0.35 s is over the 150 ms target.
    assert full["enrich"]["meets_target"] is False
    assert full["enrich"]["exactly_once"] is True


def test_report_shows_lags_in_ms_next_to_targets() -> None:
    events: list[Event] = [
        final("a", 1.0),
        enriched("a", 1.125),
        update(["a"], 1.25, ["pricing"]),
        done(2.0, {"asr": 2.0, "enrich": 0.1, "semantic": 0.01}),
    ]
    summary = stage_summary([SessionEvents(events, audio_s=10.0)], DEFAULT_PIPELINE)
    results = {
        "config": {"stage_targets": TARGETS},
        "runs": [{"label": "N=1 x", "stages": summary}],
    }
    row = stages_table(results).splitlines()[2]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:8] == ["N=1 x", "1/1", "yes", "125", "125", "yes", "250", "250"]
    assert "enrich lag p95 (<= 300)" in stages_table(results)
    assert "| semantic | 0.01" in processing_table(results)


def test_pipeline_flag_reaches_the_workers_and_defaults_to_every_stage() -> None:
    default = parse_args([])
    assert default.pipeline == DEFAULT_PIPELINE
    assert worker_env(default)["STREAMSCRIBE_PIPELINE"] == "ingest,asr,enrich,semantic"
    asr_only = parse_args(["--quick", "--pipeline", "ingest, asr"])
    assert asr_only.pipeline == ("ingest", "asr")
    assert worker_env(asr_only)["STREAMSCRIBE_PIPELINE"] == "ingest,asr"
    for bad in (["--pipeline", "ingest,enrich"], ["--pipeline", "ingest,asr,nope"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
    with pytest.raises(SystemExit):
        parse_args(["--worker-env", "STREAMSCRIBE_PIPELINE=ingest,asr"])
