"""The gateway's Starlette application: routes, auth errors, lifespan (Redis, feeds)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import metadata

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from shared.bus import REDIS_UNAVAILABLE, connect
from shared.protocol import Limits
from shared.settings import BusSettings
from streamscribe.gateway import rest
from streamscribe.gateway.auth import AuthError
from streamscribe.gateway.context import GatewayContext
from streamscribe.gateway.deepgram import listen_endpoint
from streamscribe.gateway.openapi import openapi_document
from streamscribe.gateway.page import STATIC_DIR, page
from streamscribe.gateway.sessions import SessionNotFound
from streamscribe.gateway.settings import GatewaySettings
from streamscribe.gateway.ws_stream import stream_endpoint

# (method, path) of every route that needs a token; tests refuse each without one.
PROTECTED_ROUTES: tuple[tuple[str, str], ...] = (
    ("WEBSOCKET", "/stream"),
    ("POST", "/stream/sessions"),
    ("GET", "/stream/sessions/{session_id}/status"),
    ("DELETE", "/stream/sessions/{session_id}"),
    ("GET", "/stream/sessions/{session_id}/transcript"),
    ("GET", "/stream/sessions/{session_id}/events"),
    ("GET", "/stream/config"),
    ("WEBSOCKET", "/v1/listen"),
)
# The page holds no data: it takes its token from its own URL (`/?token=`).
PUBLIC_ROUTES = ("/livez", "/readyz", "/metrics", "/openapi.json", "/", "/static")


def _version() -> str:
    try:
        return metadata.version("streamscribe")
    except metadata.PackageNotFoundError:
        return "0"


async def livez(_request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    ctx: GatewayContext = request.app.state.gateway
    try:
        await ctx.redis.ping()
    except REDIS_UNAVAILABLE:
        return PlainTextResponse("redis unreachable\n", status_code=503)
    return PlainTextResponse("ok\n")


async def metrics_endpoint(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def openapi_endpoint(_request: Request) -> Response:
    return JSONResponse(openapi_document(_version()))


async def _auth_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    return rest.auth_error_response(exc)


async def _not_found(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SessionNotFound)
    return rest.not_found_response(exc)


def create_app(
    settings: GatewaySettings,
    bus: BusSettings,
    ingest: Limits | None = None,
) -> Starlette:
    """The ASGI app; it connects to Redis on startup and closes every feed on shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = connect(bus)
        ctx = GatewayContext.build(redis, settings, bus, ingest or Limits())
        app.state.gateway = ctx
        try:
            yield
        finally:
            await ctx.hub.close()
            await redis.aclose()

    routes = [
        WebSocketRoute("/stream", stream_endpoint),
        Route("/stream/sessions", rest.create_session, methods=["POST"]),
        Route("/stream/sessions/{session_id}/status", rest.session_status, methods=["GET"]),
        Route("/stream/sessions/{session_id}", rest.delete_session, methods=["DELETE"]),
        Route("/stream/sessions/{session_id}/transcript", rest.session_transcript, methods=["GET"]),
        Route(
            "/stream/sessions/{session_id}/events",
            rest.session_events,
            methods=["GET"],
            name="session_events",
        ),
        Route("/stream/config", rest.stream_config, methods=["GET"]),
        WebSocketRoute("/v1/listen", listen_endpoint),
        Route("/", page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={AuthError: _auth_error, SessionNotFound: _not_found},
    )
