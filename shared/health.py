"""A tiny HTTP endpoint per worker: /livez, /readyz and Prometheus /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Probe = Callable[[], Awaitable[bool]]


class HealthServer:
    """Serves liveness (loop heartbeat), readiness (Redis + stage ready) and metrics."""

    def __init__(self, host: str, port: int, live: Probe, ready: Probe) -> None:
        self.host, self.port = host, port
        self._live, self._ready = live, ready
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            path = request.split(b" ")[1].decode() if request.count(b" ") >= 2 else "/"
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b""):
                pass
            status, ctype, body = await self._route(path)
            head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    async def _route(self, path: str) -> tuple[str, str, bytes]:
        if path.startswith("/metrics"):
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest()
        probe = {"/livez": self._live, "/healthz": self._live, "/readyz": self._ready}.get(path)
        if probe is None:
            return "404 Not Found", "text/plain", b"not found\n"
        try:
            ok = await asyncio.wait_for(probe(), timeout=3)
        except Exception:
            ok = False
        return (
            ("200 OK", "text/plain", b"ok\n")
            if ok
            else ("503 Service Unavailable", "text/plain", b"not ok\n")
        )
