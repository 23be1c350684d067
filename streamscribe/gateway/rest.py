"""REST endpoints: create, inspect, force-close sessions; config; transcript; SSE events."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared import keys
from shared.consumer import TranscriptReducer, read_events
from shared.schemas import SessionConfig, encode
from streamscribe.gateway.auth import AuthError, Principal, authenticate, token_from_request
from streamscribe.gateway.context import GatewayContext
from streamscribe.gateway.sessions import SessionLimit, SessionNotFound, parse_config
from streamscribe.gateway.sse import events_response, resume_seq
from streamscribe.producer import ProducerError, SessionExists


def context(request: Request) -> GatewayContext:
    ctx: GatewayContext = request.app.state.gateway
    return ctx


def principal_of(request: Request) -> Principal:
    """The request's Principal; AuthError (401/403) is turned into a response by the app."""
    token = token_from_request(request.headers, request.query_params)
    return authenticate(token, context(request).settings)


def problem(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _authorized_session(request: Request) -> tuple[GatewayContext, str]:
    ctx = context(request)
    principal = principal_of(request)
    session_id = request.path_params["session_id"]
    await ctx.store.authorize(principal, session_id)
    return ctx, session_id


def ws_url(request: Request) -> str:
    ctx = context(request)
    if ctx.settings.public_url:
        base = ctx.settings.public_url.rstrip("/")
        base = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    else:
        scheme = "wss" if request.url.scheme == "https" else "ws"
        base = f"{scheme}://{request.url.netloc}"
    return f"{base}/stream"


async def create_session(request: Request) -> Response:
    ctx = context(request)
    principal = principal_of(request)
    try:
        body = await request.json() if await request.body() else {}
    except ValueError:
        return problem(400, "bad_request", "the body must be JSON")
    if not isinstance(body, dict):
        return problem(400, "bad_request", "the body must be a JSON object")
    try:
        config = parse_config(body.get("config"))
        requested = body.get("session_id")
        sid = await ctx.store.create(
            principal, config, requested if isinstance(requested, str) else None
        )
    except SessionExists as exc:
        return problem(409, "session_exists", str(exc))
    except SessionLimit as exc:
        return problem(429, "session_limit", str(exc))
    except (ValueError, ProducerError, keys.InvalidSessionId) as exc:
        return problem(422, "invalid_config", str(exc))
    return JSONResponse(
        {
            "session_id": sid,
            "ws_url": ws_url(request),
            "events_url": str(request.url_for("session_events", session_id=sid)),
            "config": msgspec.to_builtins(config),
            "how": "open ws_url and send START_SESSION {session_id} (or RESUME), then audio",
        },
        status_code=201,
    )


async def session_status(request: Request) -> Response:
    ctx, sid = await _authorized_session(request)
    status = await ctx.store.status(sid)
    return JSONResponse(msgspec.to_builtins(status))


async def delete_session(request: Request) -> Response:
    ctx, sid = await _authorized_session(request)
    stopped = await ctx.store.stop(sid)
    state = "stopping" if stopped else "done"
    return JSONResponse({"session_id": sid, "state": state}, status_code=202 if stopped else 200)


async def session_transcript(request: Request) -> Response:
    ctx, sid = await _authorized_session(request)
    reducer = TranscriptReducer(sid)
    async for event in read_events(ctx.redis, sid, follow=False):
        reducer.apply(event)
    return Response(encode(reducer.snapshot()), media_type="application/json")


async def session_events(request: Request) -> Response:
    ctx, sid = await _authorized_session(request)
    last_seq = resume_seq(request)
    if await ctx.store.is_closed(sid) and last_seq >= await ctx.store.last_seq(sid):
        # Everything through `done` was delivered: 204 stops an EventSource reconnecting.
        return Response(status_code=204)
    return await events_response(ctx, sid, last_seq)


async def stream_config(request: Request) -> Response:
    ctx = context(request)
    principal_of(request)
    limits = ctx.settings
    return JSONResponse(
        {
            "config": msgspec.to_builtins(SessionConfig()),
            "encodings": ["pcm_s16le", "pcm_f32le", "opus"],
            "sample_rates": [ctx.ingest.min_sample_rate, ctx.ingest.max_sample_rate],
            "max_channels": ctx.ingest.max_channels,
            "limits": {
                "max_frame_bytes": limits.max_frame_bytes,
                "max_frames_per_second": limits.max_frames_per_second,
                "frame_burst": limits.frame_burst,
                "max_sessions_per_token": limits.max_sessions_per_token,
                "queue_size": limits.queue_size,
            },
        }
    )


def auth_error_response(exc: AuthError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="streamscribe"'}
    if exc.status == 403 and exc.code != "forbidden":
        headers["WWW-Authenticate"] += ', error="invalid_token"'
    response = problem(exc.status, exc.code, exc.message)
    response.headers.update(headers)
    return response


def not_found_response(exc: SessionNotFound) -> Response:
    return problem(404, "session_not_found", str(exc))
