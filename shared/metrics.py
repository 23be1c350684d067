"""Prometheus metrics shared by every stage (labelled by stage)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_PUBLISHED = Counter(
    "streamscribe_events_published_total", "Events appended to session streams", ["stage", "type"]
)
EVENTS_DROPPED = Counter(
    "streamscribe_events_dropped_total",
    "Events the publish script dropped as not newer (replays, coalesced partials)",
    ["stage", "reason"],
)
SESSIONS_ACTIVE = Gauge("streamscribe_sessions_active", "Sessions owned by this worker", ["stage"])
SESSIONS_CLAIMED = Counter(
    "streamscribe_sessions_claimed_total",
    "Sessions taken (new or from a dead worker)",
    ["stage", "how"],
)
SESSIONS_FAILED = Counter(
    "streamscribe_sessions_failed_total", "Session runs that raised", ["stage", "error"]
)
LEASES_LOST = Counter("streamscribe_leases_lost_total", "Sessions another worker took", ["stage"])
ERRORS_EMITTED = Counter(
    "streamscribe_error_events_total", "`error` events published", ["stage", "code"]
)
AUDIO_ENTRIES_TRIMMED = Counter(
    "streamscribe_audio_entries_trimmed_total",
    "Audio log entries dropped after every stage reading the log checkpointed past them",
    ["stage"],
)
REGISTRY_ENTRIES_TRIMMED = Counter(
    "streamscribe_registry_entries_trimmed_total",
    "Session registry entries dropped after every stage's group was done with them",
    ["stage"],
)
