"""Prometheus metrics of the gateway: connections, messages, queue depth, resumes, refusals."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from streamscribe.gateway.outbox import LIVE

CONNECTIONS = Gauge(
    "streamscribe_gateway_connections", "Open client connections", ["kind"]
)  # kind: websocket, sse
MESSAGES_SENT = Counter(
    "streamscribe_gateway_messages_sent_total", "Messages sent to clients", ["kind", "type"]
)
MESSAGES_RECEIVED = Counter(
    "streamscribe_gateway_messages_received_total", "Client messages received", ["type"]
)
AUDIO_FRAMES = Counter(
    "streamscribe_gateway_audio_frames_total", "Audio frames written to Redis and acknowledged"
)
EVENTS_FANNED_OUT = Counter(
    "streamscribe_gateway_events_fanned_out_total", "Event messages queued for clients"
)
QUEUE_DEPTH = Gauge(
    "streamscribe_gateway_queue_depth", "Messages waiting in every client queue together"
)
QUEUE_DEPTH.set_function(lambda: float(sum(len(outbox) for outbox in list(LIVE))))
RESUMES = Counter("streamscribe_gateway_resumes_total", "Sessions resumed by a reconnecting client")
SESSIONS_STARTED = Counter(
    "streamscribe_gateway_sessions_started_total", "Sessions created through the gateway"
)
REFUSED = Counter("streamscribe_gateway_refused_total", "Requests refused (auth, limits)", ["code"])
SLOW_CLIENTS = Counter(
    "streamscribe_gateway_slow_consumers_total",
    "Clients disconnected because their queue overflowed with messages that cannot be dropped",
)
