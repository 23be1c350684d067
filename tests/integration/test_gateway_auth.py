"""Gateway auth and limits against real Redis: every protected route refuses a request
without a token (401, WebSocket close 1008) and with a wrong one (403, 1008); a token
reaches only its own sessions; frame size, frame rate and sessions per token are enforced."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from starlette.routing import BaseRoute, Route, WebSocketRoute

from shared.settings import BusSettings
from streamscribe.gateway.app import PROTECTED_ROUTES, PUBLIC_ROUTES, create_app
from streamscribe.gateway.auth import mint_token
from streamscribe.gateway.settings import GatewaySettings
from tests.redis_harness import RealRedis
from tests.support.gateway import (
    OTHER_TOKEN,
    SECRET,
    TOKEN,
    auth,
    gateway_in_process,
    gateway_settings,
    ws_url,
)

pytestmark = pytest.mark.timeout(60)


def _route_table(routes: list[BaseRoute]) -> set[tuple[str, str]]:
    table: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, WebSocketRoute):
            table.add(("WEBSOCKET", route.path))
        elif isinstance(route, Route):
            table |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
    return table


def test_every_route_is_protected_or_deliberately_public() -> None:
    app = create_app(GatewaySettings(tokens=("x",)), BusSettings())
    table = _route_table(app.routes)
    public = {(m, p) for m, p in table if p in PUBLIC_ROUTES}
    assert table - public == set(PROTECTED_ROUTES), "a route without an auth test"


@pytest.fixture
async def gateway(redis_server: RealRedis) -> AsyncIterator[str]:
    async with gateway_in_process(redis_server.url) as base:
        yield base


async def _session(base: str, token: str = TOKEN) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        created = await http.post("/stream/sessions", headers=auth(token), json={})
        assert created.status_code == 201, created.text
        return str(created.json()["session_id"])


async def _ws_refusal(base: str, headers: dict[str, str], first: dict[str, object]) -> dict:
    async with websockets.connect(ws_url(base), additional_headers=headers) as ws:
        # A refused token is closed on at once: the send may meet a closing socket.
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(json.dumps(first))
        message = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1008
        return message


WRONG = {"none": ({}, 401), "wrong": (auth("not-a-token"), 403)}


@pytest.mark.parametrize("credentials", sorted(WRONG))
@pytest.mark.parametrize(("method", "path"), PROTECTED_ROUTES)
async def test_refused_without_a_valid_token(
    gateway: str, method: str, path: str, credentials: str
) -> None:
    headers, status = WRONG[credentials]
    sid = await _session(gateway)
    url = path.replace("{session_id}", sid)
    if method == "WEBSOCKET" and path == "/v1/listen":
        # The Deepgram endpoint refuses at the handshake, as Deepgram does (HTTP status).
        listen = ws_url(gateway).replace("/stream", path) + "?encoding=linear16&sample_rate=16000"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(listen, additional_headers=headers):
                pass
        assert refused.value.response.status_code == status
        return
    if method == "WEBSOCKET":
        message = await _ws_refusal(
            gateway, headers, {"type": "RESUME", "session_id": sid, "last_seq": 0}
        )
        assert message["type"] == "ERROR" and message["status"] == status
        assert message["code"] == ("unauthenticated" if status == 401 else "invalid_token")
        return
    async with httpx.AsyncClient(base_url=gateway) as http:
        response = await http.request(method, url, headers=headers, json={})
    assert response.status_code == status, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("method", "path"), [r for r in PROTECTED_ROUTES if "{session_id}" in r[1]]
)
async def test_another_tokens_session_is_forbidden(gateway: str, method: str, path: str) -> None:
    sid = await _session(gateway, TOKEN)
    if method == "WEBSOCKET":
        message = await _ws_refusal(
            gateway, auth(OTHER_TOKEN), {"type": "RESUME", "session_id": sid, "last_seq": 0}
        )
        assert message["code"] == "forbidden"
        return
    async with httpx.AsyncClient(base_url=gateway) as http:
        response = await http.request(
            method, path.replace("{session_id}", sid), headers=auth(OTHER_TOKEN)
        )
        assert response.status_code == 403
        # The owner gets through (DELETE last: it ends the session).
        # (stream: the event stream of a running session does not end)
        async with http.stream(
            method, path.replace("{session_id}", sid), headers=auth(TOKEN)
        ) as owner:
            assert owner.status_code in (200, 202)


async def test_signed_tokens_scope_and_expiry(gateway: str) -> None:
    sid = await _session(gateway, TOKEN)
    viewer = mint_token(SECRET, subject="viewer", ttl_s=60, sessions=[sid])
    expired = mint_token(SECRET, subject="viewer", ttl_s=1, sessions=[sid], now=0)
    forged = mint_token("other-secret", subject="viewer", ttl_s=60, sessions=[sid])
    status = f"/stream/sessions/{sid}/status"
    async with httpx.AsyncClient(base_url=gateway) as http:
        assert (await http.get(status, params={"token": viewer})).status_code == 200
        refused = await http.get(status, headers=auth(expired))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "token_expired"
        assert (await http.get(status, headers=auth(forged))).status_code == 403
        # A token naming sessions cannot create others.
        other = await http.post("/stream/sessions", headers=auth(viewer), json={})
        assert other.status_code == 403


async def test_token_as_websocket_subprotocol(gateway: str) -> None:
    async with websockets.connect(
        ws_url(gateway), subprotocols=["streamscribe.v1", f"bearer.{TOKEN}"]
    ) as ws:
        assert ws.subprotocol == "streamscribe.v1"
        await ws.send(json.dumps({"type": "PING", "timestamp": 7}))
        pong = json.loads(await ws.recv())
        assert pong == {"type": "PONG", "seq": None, "id": None, "revision": None, "timestamp": 7}


async def _started(ws: websockets.ClientConnection) -> str:
    await ws.send(json.dumps({"type": "START_SESSION", "config": {}}))
    message = json.loads(await ws.recv())
    assert message["type"] == "SESSION_STARTED", message
    return str(message["session_id"])


async def test_frame_size_and_rate_limits(redis_server: RealRedis) -> None:
    settings = gateway_settings(max_frame_bytes=6400, max_frames_per_second=5.0, frame_burst=5)
    async with gateway_in_process(redis_server.url, settings) as base:
        async with websockets.connect(ws_url(base), additional_headers=auth()) as ws:
            await _started(ws)
            await ws.send(b"\0" * 6402)
            message = json.loads(await ws.recv())
            assert message["code"] == "frame_too_large" and not message["recoverable"]
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1009
        async with websockets.connect(ws_url(base), additional_headers=auth()) as ws:
            await _started(ws)
            for sequence in range(1, 11):
                chunk = base64.b64encode(b"\0" * 320).decode()
                await ws.send(
                    json.dumps({"type": "AUDIO_CHUNK", "sequence": sequence, "data": chunk})
                )
            received = []
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    received.append(json.loads(await ws.recv()))
            acks = [m["sequence"] for m in received if m["type"] == "AUDIO_ACK"]
            assert acks == [1, 2, 3, 4, 5]
            assert received[-1]["code"] == "rate_limited" and received[-1]["recoverable"]
            assert ws.close_code == 1008


async def test_sessions_per_token_limit(redis_server: RealRedis) -> None:
    settings = gateway_settings(max_sessions_per_token=2)
    async with gateway_in_process(redis_server.url, settings) as base:
        await _session(base)
        await _session(base)
        async with httpx.AsyncClient(base_url=base) as http:
            third = await http.post("/stream/sessions", headers=auth(), json={})
            assert third.status_code == 429 and third.json()["error"]["code"] == "session_limit"
            # Another token has its own budget.
            assert (
                await http.post("/stream/sessions", headers=auth(OTHER_TOKEN))
            ).status_code == 201
        async with websockets.connect(ws_url(base), additional_headers=auth()) as ws:
            await ws.send(json.dumps({"type": "START_SESSION", "config": {}}))
            message = json.loads(await ws.recv())
            assert message["code"] == "session_limit"
