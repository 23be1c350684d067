"""Prometheus metrics of the asr stage."""

from __future__ import annotations

from prometheus_client import Histogram

DECODE_SECONDS = Histogram(
    "streamscribe_asr_decode_seconds",
    "Wall time of one Whisper decode, by kind: partial, pause (the final-quality decode at "
    "a pause, which a final may reuse), final, cut",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
)
FINAL_LAG_SECONDS = Histogram(
    "streamscribe_asr_final_lag_seconds",
    "VAD end mark read by asr -> its final published (asr's share of final latency)",
    buckets=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0),
)
