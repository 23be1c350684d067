"""Turn session records into the benchmark's numbers: latency, WER, decode counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.latency import (
    PushClock,
    UtteranceLatency,
    summarize,
    unmatched_finals,
    utterance_latencies,
)
from bench.reference import Reference, WordErrors, word_errors
from bench.session import SessionRecord
from shared.consumer import TranscriptReducer


def streaming_hypotheses(reducer: TranscriptReducer, ref: Reference) -> list[str]:
    """The final transcript, one string per channel for stereo (time-ordered finals)."""
    if not ref.stereo:
        return [reducer.text()]
    finals = reducer.final_segments()
    return [
        " ".join(s.text.strip() for s in finals if s.channel == ch and s.text.strip())
        for ch in range(ref.channels)
    ]


def streaming_wer(record: SessionRecord) -> tuple[WordErrors, WordErrors | None]:
    """(WER per channel pooled, or of the mono text; WER of the time-ordered merge for stereo)."""
    assert record.reducer is not None
    ref = record.reference
    pooled = word_errors(ref.texts(), streaming_hypotheses(record.reducer, ref))
    merged = word_errors([ref.text], [record.reducer.text()]) if ref.stereo else None
    return pooled, merged


def session_latencies(record: SessionRecord) -> list[UtteranceLatency]:
    return utterance_latencies(
        record.reference.utterances, record.arrivals, PushClock(record.push_marks)
    )


def session_result(record: SessionRecord) -> dict[str, Any]:
    """Everything measured for one session, JSON-ready."""
    ref = record.reference
    lats = session_latencies(record)
    finals = [v.final_latency_s for v in lats if v.final_latency_s is not None]
    firsts = [v.first_partial_latency_s for v in lats if v.first_partial_latency_s is not None]
    final_events = record.finals
    decodes = max((a.decodes for a in record.arrivals), default=0)
    with_text = [f for f in final_events if f.text.strip()]
    pooled, merged = streaming_wer(record)
    provenance = _provenance(record)
    return {
        "file": ref.name,
        "session_id": record.session_id,
        "channels": ref.channels,
        "duration_s": ref.duration_s,
        "completed": record.done_at is not None,
        "timed_out": record.timed_out,
        "errors": record.errors,
        "utterances": len(ref.utterances),
        "utterances_without_final": sum(1 for v in lats if v.final_latency_s is None),
        "finals": len(final_events),
        "finals_with_text": len(with_text),
        "finals_outside_reference": [
            {"start_s": f.start_s, "end_s": f.end_s, "channel": f.channel, "text": f.text}
            for f in unmatched_finals(ref.utterances, final_events)
        ],
        "partials": record.partials,
        "final_latency_s": summarize(finals),
        "first_partial_latency_s": summarize(firsts),
        "done_after_push_s": _delta(record.done_at, record.push_finished_at),
        "wer_streaming": pooled.as_dict(),
        "wer_streaming_merged": merged.as_dict() if merged else None,
        "wer_mode": "per-channel, pooled" if ref.stereo else "mono",
        "decodes": decodes,
        "decodes_per_final": round(decodes / len(with_text), 2) if with_text else None,
        "decodes_per_audio_s": round(decodes / ref.duration_s, 3),
        **provenance,
        "hypothesis": streaming_hypotheses(record.reducer, ref) if record.reducer else [],
        "finals_detail": [
            {
                "id": f.segment_id,
                "channel": f.channel,
                "start_s": f.start_s,
                "end_s": f.end_s,
                "text": f.text,
                "decodes": f.decodes,
                "arrived_after_start_s": _delta(f.arrived_at, record.started_at),
            }
            for f in final_events
        ],
        "per_utterance": [
            {
                "index": v.index,
                "channel": v.channel,
                "start_s": v.start_s,
                "end_s": v.end_s,
                "final_latency_s": _r(v.final_latency_s),
                "first_partial_latency_s": _r(v.first_partial_latency_s),
                "segments": v.segment_ids,
            }
            for v in lats
        ],
    }


def pooled_latencies(records: Sequence[SessionRecord]) -> dict[str, dict[str, float | int | None]]:
    """Final and first-partial latency summaries over every utterance of `records`."""
    finals: list[float] = []
    firsts: list[float] = []
    for record in records:
        for v in session_latencies(record):
            if v.final_latency_s is not None:
                finals.append(v.final_latency_s)
            if v.first_partial_latency_s is not None:
                firsts.append(v.first_partial_latency_s)
    return {"final_latency_s": summarize(finals), "first_partial_latency_s": summarize(firsts)}


def _provenance(record: SessionRecord) -> dict[str, Any]:
    if record.reducer is None:
        return {}
    for seg in record.reducer.final_segments():
        if seg.asr is not None:
            return {
                "model": seg.asr.model,
                "device": seg.asr.device,
                "compute_type": seg.asr.compute_type,
                "beam_size": seg.asr.beam_size,
            }
    return {}


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
