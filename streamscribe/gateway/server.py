"""Run the gateway app on uvicorn (the `streamscribe gateway` process)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from shared.protocol import limits_from
from shared.settings import Settings
from streamscribe.gateway.app import create_app
from streamscribe.gateway.settings import GatewaySettings

# Base64 in JSON is 4/3 of the audio plus the envelope: uvicorn drops anything larger
# before the gateway sees it; the gateway's own check gives the clear error below that.
_WS_OVERHEAD = 4096


def uvicorn_config(
    gateway: GatewaySettings, settings: Settings, *, log_level: str = "warning"
) -> uvicorn.Config:
    app = create_app(gateway, settings.bus, limits_from(settings.stages.get("ingest")))
    return uvicorn.Config(
        app,
        host=gateway.host,
        port=gateway.port,
        ws="websockets-sansio",
        ws_max_size=gateway.max_frame_bytes * 2 + _WS_OVERHEAD,
        ws_per_message_deflate=False,
        lifespan="on",
        log_level=log_level,
        access_log=False,
        # A client that stops reading gets this long before its close frame is given up on.
        timeout_graceful_shutdown=5,
    )


def serve(gateway: GatewaySettings, settings: Settings, *, extra_port: int = 0) -> None:
    """Blocking: serve until SIGTERM/SIGINT. `extra_port` (the supervisor's health port)
    serves the same app on 127.0.0.1 too, so `up` checks /readyz as for every worker."""
    config = uvicorn_config(gateway, settings, log_level=settings.serve.log_level)
    server = uvicorn.Server(config)
    sockets = [_bind(gateway.host, gateway.port)]
    if extra_port and extra_port != gateway.port:
        sockets.append(_bind(settings.serve.health_host, extra_port))
    asyncio.run(server.serve(sockets=sockets))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
