"""Prometheus metrics of the enrich stage."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SEGMENTS_ENRICHED = Counter(
    "streamscribe_enrich_segments_total", "Final segments enriched (one segment_enriched each)"
)
BATCH_SECONDS = Histogram(
    "streamscribe_enrich_batch_seconds",
    "Wall time of enriching one batch of final segments (audio read, prosody, emotion)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
