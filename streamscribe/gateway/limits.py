"""Per-connection limits of /stream: the frame-rate token bucket and subprotocol choice."""

from __future__ import annotations

import time

from streamscribe.gateway.auth import SUBPROTOCOL, SUBPROTOCOL_BEARER


class TokenBucket:
    """`rate` frames per second sustained, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def choose_subprotocol(offered: list[str]) -> str | None:
    """Answer `streamscribe.v1` when offered; a browser that offered only `bearer.<token>`
    must get one of its own offers back or it fails the handshake."""
    if SUBPROTOCOL in offered:
        return SUBPROTOCOL
    return next((p for p in offered if p.startswith(SUBPROTOCOL_BEARER)), None)
