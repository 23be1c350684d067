"""Prometheus metrics of the ingest stage."""

from __future__ import annotations

from prometheus_client import Counter

FRAMES_INGESTED = Counter(
    "streamscribe_ingest_frames_total", "Producer frames accepted by ingest", ["encoding"]
)
