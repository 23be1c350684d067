"""The gateway: WebSocket, SSE and REST for clients that speak HTTP, not Redis."""

from streamscribe.gateway.settings import GatewaySettings

__all__ = ["GatewaySettings"]
