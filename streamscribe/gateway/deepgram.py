"""WebSocket `/v1/listen`: Deepgram's live transcription protocol on a streamscribe session.

A connection is one session, created at the handshake from the query (deepgram_map.py).
Binary frames are linear16 audio, sent to the bus as media frames in order; the text
messages `KeepAlive`, `Finalize` (the producer `finalize`, through the bus) and
`CloseStream` (the producer `stop`) control it. The session's events come through the
same feed, bounded outbox and backpressure as `/stream`, mapped to Deepgram messages.
Refusals happen at the handshake as HTTP errors, as Deepgram's own server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

import msgspec
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from streamscribe.gateway import metrics
from streamscribe.gateway.auth import AuthError, Principal, authenticate, token_from_request
from streamscribe.gateway.context import GatewayContext
from streamscribe.gateway.deepgram_map import (
    DeepgramMapper,
    DeepgramOptions,
    parse_options,
    position_16k,
)
from streamscribe.gateway.fanout import SessionFeed
from streamscribe.gateway.limits import TokenBucket
from streamscribe.gateway.messages import CLOSE_NORMAL, CLOSE_POLICY, Outgoing, error
from streamscribe.gateway.outbox import Outbox
from streamscribe.gateway.sessions import SessionLimit
from streamscribe.gateway.tasks import cancel_and_wait
from streamscribe.producer import InvalidConfig, ProducerError

# Deepgram's browser SDK offers `Sec-WebSocket-Protocol: token, <key>` (an access token:
# `bearer, <token>`): the credential is the second offer, the answer is the first.
_SUBPROTOCOL_SCHEMES = ("token", "bearer")


def deepgram_credentials(
    headers: Any, query: Any, offered: Sequence[str]
) -> tuple[str | None, str | None]:
    """(token, subprotocol to answer) of a `/v1/listen` handshake."""
    if len(offered) >= 2 and offered[0].lower() in _SUBPROTOCOL_SCHEMES:
        return offered[1], offered[0]
    return token_from_request(headers, query, offered), None


class DeepgramConnection:
    """One Deepgram client on `/v1/listen`."""

    def __init__(self, websocket: WebSocket, ctx: GatewayContext) -> None:
        self.ws = websocket
        self.ctx = ctx
        self.outbox = Outbox(ctx.settings.queue_size)
        self.producer = ctx.store.producer()
        self.bucket = TokenBucket(ctx.settings.max_frames_per_second, ctx.settings.frame_burst)
        self.session_id = ""
        self.feed: SessionFeed | None = None
        self.next_sequence = 1
        self.samples_sent = 0
        self.remainder = b""
        self.ending = False
        self.ended = False

    async def run(self) -> None:
        offered = list(self.ws.scope.get("subprotocols", []))
        token, answer = deepgram_credentials(self.ws.headers, self.ws.query_params, offered)
        try:
            principal = authenticate(token, self.ctx.settings)
            options = parse_options(self.ws.query_params)
            await self._create(principal, options)
        except AuthError as exc:
            metrics.REFUSED.labels(exc.code).inc()
            await self._deny(exc.status, exc.code, exc.message)
            return
        except SessionLimit as exc:
            await self._deny(429, "session_limit", str(exc))
            return
        except (ValueError, ProducerError) as exc:
            await self._deny(400, "Bad Request", str(exc))
            return
        self.options = options
        self.mapper = DeepgramMapper(options, request_id=self.session_id)
        await self.ws.accept(
            subprotocol=answer, headers=[(b"dg-request-id", self.session_id.encode())]
        )
        metrics.CONNECTIONS.labels("deepgram").inc()
        following = asyncio.create_task(self._follow())
        sender = asyncio.create_task(self._send_loop())
        receiver = asyncio.create_task(self._receive_loop())
        tasks: tuple[asyncio.Task[Any], ...] = (sender, receiver, following)
        try:
            await asyncio.wait((sender, receiver), return_when=asyncio.FIRST_COMPLETED)
            if receiver.done() and not sender.done() and self.ending:
                # CloseStream: the pipeline finishes; what it publishes goes out, then
                # Metadata and the close (the sender returns after `done`).
                await asyncio.wait({sender}, timeout=None)
            elif not sender.done() and self.outbox.closing:
                await asyncio.wait({sender}, timeout=self.ctx.settings.close_timeout_s)
        finally:
            await cancel_and_wait(tasks)
            self.ctx.hub.unsubscribe(self.feed, self.outbox)
            metrics.CONNECTIONS.labels("deepgram").dec()
            if not self.ending and not self.ended:
                # A Deepgram stream cannot be resumed: a client gone means its audio ended.
                with contextlib.suppress(Exception):
                    await self.ctx.store.stop(self.session_id, self.producer)

    async def _create(self, principal: Principal, options: DeepgramOptions) -> None:
        try:
            self.session_id = await self.ctx.store.create(
                principal, options.session_config(), producer=self.producer
            )
        except InvalidConfig as exc:
            raise ValueError(str(exc)) from None

    async def _deny(self, status: int, code: str, message: str) -> None:
        """Refuse the handshake with an HTTP error, Deepgram's way (`err_code`, `err_msg`)."""
        body = {"err_code": code, "err_msg": message, "request_id": self.session_id or None}
        headers = {"WWW-Authenticate": "Token"} if status in (401, 403) else None
        response = JSONResponse(body, status_code=status, headers=headers)
        try:
            await self.ws.send_denial_response(response)
        except RuntimeError:  # a server without the denial extension: a plain close
            await self.ws.close(CLOSE_POLICY, code)

    async def _follow(self) -> None:
        self.feed = await self.ctx.hub.subscribe(self.session_id, 1, self.outbox)

    # --- sending ---------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            message = await self.outbox.get()
            try:
                if message.raw:
                    if await self._send_event(message):
                        return
                    continue
                await self._send_control(message)
                if message.close_code is not None:
                    return
            except Exception:  # the client went away
                return

    async def _send_event(self, message: Outgoing) -> bool:
        """Send the event's Deepgram messages; True once the session ended (`done`)."""
        event = msgspec.json.decode(message.raw)
        for out in self.mapper.messages(event):
            await self.ws.send_text(json.dumps(out))
            metrics.MESSAGES_SENT.labels("deepgram", out["type"]).inc()
        if event.get("type") == "done":
            self.ended = True
            await self.ws.close(CLOSE_NORMAL)
            return True
        return False

    async def _send_control(self, message: Outgoing) -> None:
        """A gateway message (slow client, lost feed, a refused frame) as a Deepgram Error."""
        body = json.loads(message.text)
        code = str(body.get("code", "error"))
        await self.ws.send_text(
            json.dumps(
                {
                    "type": "Error",
                    "variant": code,
                    "description": str(body.get("message", "")),
                    "code": code,
                    "message": str(body.get("message", "")),
                }
            )
        )
        metrics.MESSAGES_SENT.labels("deepgram", "Error").inc()
        if message.close_code is not None:
            await self.ws.close(message.close_code, message.close_reason[:120])

    # --- receiving -------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while not self.outbox.closing and not self.ending:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                metrics.MESSAGES_RECEIVED.labels("binary").inc()
                await self._audio(message["bytes"])
            elif message.get("text") is not None:
                await self._text(message["text"])

    async def _text(self, text: str) -> None:
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        metrics.MESSAGES_RECEIVED.labels(kind if kind in _CONTROLS else "unknown").inc()
        if kind == "Finalize":
            # Every frame before it is in the inbox (sends are awaited in order), so ingest
            # closes the open utterances exactly at this position.
            self.mapper.finalize_requested(
                position_16k(self.samples_sent, self.options.sample_rate)
            )
            await self.producer.finalize(self.session_id)
        elif kind == "CloseStream":
            self.ending = True
            await self.ctx.store.stop(self.session_id, self.producer)
        elif kind != "KeepAlive":
            self.outbox.put(
                _gateway_error("bad_message", f"unknown message {text[:60]!r}; ignored")
            )

    async def _audio(self, data: bytes) -> None:
        # Deepgram clients cut audio anywhere; a frame on the bus holds whole samples.
        data = self.remainder + data
        whole = len(data) - len(data) % self.options.sample_bytes
        self.remainder = data[whole:]
        step = self.ctx.settings.max_frame_bytes // self.options.sample_bytes
        step *= self.options.sample_bytes
        for offset in range(0, whole, step):
            piece = data[offset : min(whole, offset + step)]
            if not self.bucket.take():
                metrics.REFUSED.labels("rate_limited").inc()
                self.outbox.close_with(
                    _gateway_error(
                        "rate_limited",
                        f"over {self.ctx.settings.max_frames_per_second:g} audio messages "
                        "per second",
                        close_code=CLOSE_POLICY,
                    )
                )
                return
            await self.producer.send(self.session_id, self.next_sequence, piece)
            self.next_sequence += 1
            self.samples_sent += len(piece) // self.options.sample_bytes
            metrics.AUDIO_FRAMES.inc()


_CONTROLS = ("KeepAlive", "Finalize", "CloseStream")


def _gateway_error(code: str, message: str, close_code: int | None = None) -> Outgoing:
    return error(code, message, recoverable=close_code is None, close_code=close_code)


async def listen_endpoint(websocket: WebSocket) -> None:
    """The `/v1/listen` route."""
    ctx: GatewayContext = websocket.app.state.gateway
    await DeepgramConnection(websocket, ctx).run()
