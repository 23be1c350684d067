"""WebSocket `/stream`: start or resume a session, send audio (acknowledged), receive events.

One connection runs two tasks: the receiver (client messages: START_SESSION, RESUME,
AUDIO_CHUNK or binary audio, END_SESSION, PING) and the sender (the connection's outbox:
events from the session feed and the gateway's own replies). Neither waits for the other,
so a client that stops reading never stalls its audio, other clients or the feed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from typing import Any

from starlette.websockets import WebSocket

from shared import keys
from streamscribe.gateway import metrics
from streamscribe.gateway.auth import (
    AuthError,
    Principal,
    authenticate,
    token_from_request,
)
from streamscribe.gateway.context import GatewayContext
from streamscribe.gateway.fanout import SessionFeed
from streamscribe.gateway.limits import TokenBucket, choose_subprotocol
from streamscribe.gateway.messages import (
    CLOSE_INVALID_DATA,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    control,
    error,
)
from streamscribe.gateway.outbox import Outbox
from streamscribe.gateway.sessions import SessionLimit, SessionNotFound, parse_config
from streamscribe.gateway.tasks import cancel_and_wait
from streamscribe.producer import InvalidFrame, ProducerError, SessionExists

# A connection without a token in its handshake must authenticate with its first message.
AUTH_TIMEOUT_S = 10.0


class StreamConnection:
    """One client on `/stream`."""

    def __init__(self, websocket: WebSocket, ctx: GatewayContext) -> None:
        self.ws = websocket
        self.ctx = ctx
        self.settings = ctx.settings
        self.outbox = Outbox(ctx.settings.queue_size)
        self.producer = ctx.store.producer()
        self.bucket = TokenBucket(ctx.settings.max_frames_per_second, ctx.settings.frame_burst)
        self.principal: Principal | None = None
        self.session_id: str | None = None
        self.feed: SessionFeed | None = None
        self.following: asyncio.Task[None] | None = None
        self.next_sequence = 1
        self.ending = False
        self.closed_session = False

    async def run(self) -> None:
        offered = list(self.ws.scope.get("subprotocols", []))
        token = token_from_request(self.ws.headers, self.ws.query_params, offered)
        await self.ws.accept(subprotocol=choose_subprotocol(offered))
        metrics.CONNECTIONS.labels("websocket").inc()
        if token is not None:
            try:
                self.principal = authenticate(token, self.settings)
            except AuthError as exc:
                self._refuse(exc)
        sender = asyncio.create_task(self._send_loop())
        receiver = asyncio.create_task(self._receive_loop())
        failed = asyncio.create_task(self.outbox.failed.wait())
        tasks: tuple[asyncio.Task[Any], ...] = (sender, receiver, failed)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if failed.done():
                metrics.SLOW_CLIENTS.inc()
            if not sender.done() and self.outbox.closing:
                # The closing message (an error, SESSION_ENDED) gets a bounded chance to
                # go out; a client that reads nothing at all is then simply dropped.
                await asyncio.wait({sender}, timeout=self.settings.close_timeout_s)
        finally:
            if self.following is not None:
                tasks = (*tasks, self.following)
            await cancel_and_wait(tasks)
            self.ctx.hub.unsubscribe(self.feed, self.outbox)
            metrics.CONNECTIONS.labels("websocket").dec()

    # --- sending ---------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            message = await self.outbox.get()
            try:
                await self.ws.send_text(message.text)
                metrics.MESSAGES_SENT.labels("websocket", message.type).inc()
                if message.close_code is not None:
                    await self.ws.close(message.close_code, message.close_reason[:120])
                    return
            except Exception:  # the client went away (ClientDisconnected, a reset socket)
                return

    def _refuse(self, exc: AuthError) -> None:
        metrics.REFUSED.labels(exc.code).inc()
        self.outbox.close_with(
            error(
                exc.code, exc.message, recoverable=False, close_code=CLOSE_POLICY, status=exc.status
            )
        )

    # --- receiving -------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        deadline = time.monotonic() + AUTH_TIMEOUT_S
        while not self.outbox.closing:
            timeout = None if self.principal else max(0.0, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout=timeout)
            except TimeoutError:
                self._refuse(AuthError(401, "unauthenticated", "a bearer token is required"))
                return
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                metrics.MESSAGES_RECEIVED.labels("binary").inc()
                if self._authenticated():
                    await self._audio(self.next_sequence, message["bytes"])
            elif message.get("text") is not None:
                await self._text(message["text"])

    def _authenticated(self) -> bool:
        if self.principal is None:
            self._refuse(AuthError(401, "unauthenticated", "a bearer token is required"))
        return self.principal is not None

    async def _text(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            self.outbox.put(
                error("bad_message", "expected a JSON object with a type", recoverable=True)
            )
            return
        kind = msg["type"]
        metrics.MESSAGES_RECEIVED.labels(kind if kind in _HANDLERS else "unknown").inc()
        if self.principal is None and isinstance(msg.get("token"), str):
            try:
                self.principal = authenticate(msg["token"], self.settings)
            except AuthError as exc:
                self._refuse(exc)
                return
        if not self._authenticated():
            return
        handler = _HANDLERS.get(kind)
        if handler is None:
            self.outbox.put(
                error("unknown_message", f"unknown message type {kind!r}", recoverable=True)
            )
            return
        await handler(self, msg)

    async def _start(self, msg: dict[str, Any]) -> None:
        assert self.principal is not None
        if self.session_id is not None:
            self.outbox.put(
                error("session_active", "this connection has a session", recoverable=True)
            )
            return
        try:
            config = parse_config(msg.get("config"))
        except ValueError as exc:
            self.outbox.put(error("invalid_config", str(exc), recoverable=True))
            return
        requested = msg.get("session_id")
        if isinstance(requested, str) and await self._exists(requested):
            # Created by POST /stream/sessions: attach to it.
            await self._attach(requested, 0, resumed=False)
            return
        try:
            sid = await self.ctx.store.create(
                self.principal,
                config,
                requested if isinstance(requested, str) else None,
                producer=self.producer,
            )
        except AuthError as exc:
            self._refuse(exc)
            return
        except (ProducerError, keys.InvalidSessionId, SessionLimit) as exc:
            code = {SessionExists: "session_exists", SessionLimit: "session_limit"}.get(
                type(exc), "invalid_config"
            )
            self.outbox.put(error(code, str(exc), recoverable=False))
            return
        self.session_id = sid
        self.outbox.put(control("SESSION_STARTED", session_id=sid, resumed=False, last_seq=0))
        self._follow(sid, 1)

    async def _exists(self, session_id: str) -> bool:
        try:
            return bool(
                await self.ctx.redis.exists(
                    keys.gateway_owner(session_id), keys.inbox(session_id), keys.events(session_id)
                )
            )
        except keys.InvalidSessionId:
            return False

    async def _resume(self, msg: dict[str, Any]) -> None:
        sid, last_seq = msg.get("session_id"), msg.get("last_seq", 0)
        if not isinstance(sid, str) or not isinstance(last_seq, int) or last_seq < 0:
            self.outbox.put(
                error("bad_message", "RESUME needs session_id and last_seq >= 0", recoverable=True)
            )
            return
        next_sequence = msg.get("next_sequence", 1)
        if isinstance(next_sequence, int) and next_sequence >= 1:
            self.next_sequence = next_sequence
        await self._attach(sid, last_seq, resumed=True)

    async def _attach(self, sid: str, last_seq: int, *, resumed: bool) -> None:
        assert self.principal is not None
        if self.session_id is not None:
            self.outbox.put(
                error("session_active", "this connection has a session", recoverable=True)
            )
            return
        try:
            await self.ctx.store.authorize(self.principal, sid)
        except AuthError as exc:
            self._refuse(exc)
            return
        except SessionNotFound as exc:
            self.outbox.close_with(
                error("session_not_found", str(exc), recoverable=False, close_code=CLOSE_POLICY)
            )
            return
        published = await self.ctx.store.last_seq(sid)
        if last_seq > published:
            self.outbox.put(
                error(
                    "bad_last_seq",
                    f"last_seq {last_seq} is beyond the session's last event ({published})",
                    recoverable=True,
                )
            )
            return
        self.session_id = sid
        self.closed_session = await self.ctx.store.is_closed(sid)
        if resumed:
            metrics.RESUMES.inc()
        kind = "SESSION_RESUMED" if resumed else "SESSION_STARTED"
        reply = control(kind, session_id=sid, resumed=resumed, last_seq=last_seq)
        if self.closed_session and last_seq >= published:
            # The client has everything up to `done`: nothing follows, ever.
            self.outbox.close_with(
                control(
                    kind,
                    session_id=sid,
                    resumed=resumed,
                    last_seq=last_seq,
                    ended=True,
                    close_code=CLOSE_NORMAL,
                    reason="session already ended",
                )
            )
            return
        self.outbox.put(reply)
        self._follow(sid, last_seq + 1)

    def _follow(self, sid: str, from_seq: int) -> None:
        # Its own task: catching up a long backlog waits for the client to read, and
        # audio (a resumed client re-sending frames) must not wait for that.
        async def follow() -> None:
            self.feed = await self.ctx.hub.subscribe(sid, from_seq, self.outbox)

        self.following = asyncio.create_task(follow())

    async def _audio_chunk(self, msg: dict[str, Any]) -> None:
        sequence = msg.get("sequence", self.next_sequence)
        if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
            self.outbox.put(
                error("invalid_frame", "sequence must be an int >= 1", recoverable=True)
            )
            return
        try:
            data = base64.b64decode(msg.get("data") or "", validate=True)
        except (binascii.Error, TypeError, ValueError):
            self.outbox.put(
                error("invalid_frame", "data must be base64", recoverable=True, sequence=sequence)
            )
            return
        await self._audio(sequence, data)

    async def _audio(self, sequence: int, data: bytes) -> None:
        sid = self.session_id
        if sid is None:
            self.outbox.put(
                error("no_session", "send START_SESSION or RESUME first", recoverable=True)
            )
            return
        if self.ending or self.closed_session:
            self.outbox.put(
                error(
                    "session_ended",
                    "the session takes no more audio",
                    recoverable=False,
                    sequence=sequence,
                )
            )
            return
        limit = self.settings.max_frame_bytes
        if len(data) > limit:
            metrics.REFUSED.labels("frame_too_large").inc()
            self.outbox.close_with(
                error(
                    "frame_too_large",
                    f"frame {sequence} is {len(data)} bytes, over the {limit}-byte limit",
                    recoverable=False,
                    close_code=CLOSE_TOO_BIG,
                    sequence=sequence,
                )
            )
            return
        if not self.bucket.take():
            metrics.REFUSED.labels("rate_limited").inc()
            self.outbox.close_with(
                error(
                    "rate_limited",
                    f"over {self.settings.max_frames_per_second:g} frames per second "
                    f"(burst {self.settings.frame_burst}); resume and re-send unacknowledged "
                    "frames more slowly",
                    recoverable=True,
                    close_code=CLOSE_POLICY,
                    sequence=sequence,
                )
            )
            return
        try:
            await self.producer.send(sid, sequence, data)
        except InvalidFrame as exc:
            self.outbox.close_with(
                error(
                    "invalid_frame",
                    str(exc),
                    recoverable=False,
                    close_code=CLOSE_INVALID_DATA,
                    sequence=sequence,
                )
            )
            return
        # The XADD returned: the frame is in Redis and ingest will read it; only now ack.
        self.next_sequence = sequence + 1
        metrics.AUDIO_FRAMES.inc()
        self.outbox.put(control("AUDIO_ACK", sequence=sequence))

    async def _end(self, _msg: dict[str, Any]) -> None:
        if self.session_id is None:
            self.outbox.put(
                error("no_session", "send START_SESSION or RESUME first", recoverable=True)
            )
            return
        if not self.ending:
            self.ending = True
            await self.ctx.store.stop(self.session_id, self.producer)

    async def _ping(self, msg: dict[str, Any]) -> None:
        self.outbox.put(control("PONG", timestamp=msg.get("timestamp")))


_HANDLERS = {
    "START_SESSION": StreamConnection._start,
    "RESUME": StreamConnection._resume,
    "AUDIO_CHUNK": StreamConnection._audio_chunk,
    "END_SESSION": StreamConnection._end,
    "PING": StreamConnection._ping,
}


async def stream_endpoint(websocket: WebSocket) -> None:
    """The `/stream` route."""
    ctx: GatewayContext = websocket.app.state.gateway
    await StreamConnection(websocket, ctx).run()
