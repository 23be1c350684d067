"""GatewaySettings: where the gateway listens, how it authenticates, its limits and queues."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from shared.settings import coerce_setting

GATEWAY_ENV_PREFIX = "STREAMSCRIBE_GATEWAY_"


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything the gateway process needs besides the bus; built at the CLI edge."""

    host: str = "127.0.0.1"
    port: int = 8000
    # URL clients are told to open (POST /stream/sessions); "" derives it from the request.
    public_url: str = ""
    # Static bearer tokens (STREAMSCRIBE_GATEWAY_TOKENS, comma-separated).
    tokens: tuple[str, ...] = ()
    # Key of the HMAC-SHA256 signed tokens `streamscribe token` mints ("" disables them).
    token_secret: str = ""
    # Decoded audio bytes per frame. Ingest's own limit is 1 MiB; a 100 ms frame of 48 kHz
    # stereo f32 is 38 KiB, so 256 KiB leaves room without letting one client hog Redis.
    max_frame_bytes: int = 256 * 1024
    # Token bucket per connection: sustained frames per second, and the burst a client may
    # send at once (re-sending unacknowledged frames after a resume is such a burst).
    max_frames_per_second: float = 200.0
    frame_burst: int = 1000
    # Sessions one token subject may have open (started and not `done`) at once.
    max_sessions_per_token: int = 20
    # Messages waiting for one client. Partials coalesce per id, so what fills it is finals,
    # turns and annotations a client cannot keep up with: it is then disconnected.
    queue_size: int = 1000
    # Recent event messages each session feed keeps, so a resuming client joins the live
    # feed without a Redis read when it was not far behind.
    replay_buffer: int = 512
    # A slow client gets this long to take its `slow_consumer` error before it is dropped.
    close_timeout_s: float = 5.0
    # SSE comment lines keep proxies from closing an idle event stream.
    sse_keepalive_s: float = 15.0
    # TTL of the gateway's own keys (session owner, a subject's sessions).
    owner_ttl_s: int = 2 * 24 * 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        """Read STREAMSCRIBE_GATEWAY_* (e.g. STREAMSCRIBE_GATEWAY_PORT, _TOKENS)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        default = cls()
        for f in fields(cls):
            raw = env.get(GATEWAY_ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = coerce_setting(raw, getattr(default, f.name), f"gateway {f.name}")
        return replace(default, **values)

    def to_env(self) -> dict[str, str]:
        """STREAMSCRIBE_GATEWAY_* variables from which `from_env` rebuilds these settings."""
        env: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            env[GATEWAY_ENV_PREFIX + f.name.upper()] = text
        return env

    @property
    def auth_configured(self) -> bool:
        return bool(self.tokens or self.token_secret)
