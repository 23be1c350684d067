"""Server-Sent Events: a session's messages with `id: <seq>`, so Last-Event-ID resumes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from streamscribe.gateway import metrics
from streamscribe.gateway.context import GatewayContext
from streamscribe.gateway.messages import Outgoing
from streamscribe.gateway.outbox import Outbox


def resume_seq(request: Request) -> int:
    """The seq to start after: Last-Event-ID (a browser's reconnect), else `?last_seq=`."""
    for raw in (request.headers.get("last-event-id"), request.query_params.get("last_seq")):
        if raw is not None and raw.strip().isdigit():
            return int(raw.strip())
    return 0


def frame(message: Outgoing) -> str:
    """One SSE event: `id` only for messages that mirror an event (they have a seq)."""
    head = f"id: {message.seq}\n" if message.seq is not None else ""
    return f"{head}event: {message.type}\ndata: {message.text}\n\n"


async def events_response(ctx: GatewayContext, session_id: str, last_seq: int) -> Response:
    outbox = Outbox(ctx.settings.queue_size)
    keepalive_s = ctx.settings.sse_keepalive_s

    async def body() -> AsyncIterator[str]:
        metrics.CONNECTIONS.labels("sse").inc()
        feed = await ctx.hub.subscribe(session_id, last_seq + 1, outbox)
        try:
            # Tells the browser how long to wait before reconnecting.
            yield "retry: 1000\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(outbox.get(), timeout=keepalive_s)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield frame(message)
                metrics.MESSAGES_SENT.labels("sse", message.type).inc()
                if message.close_code is not None:
                    # SESSION_ENDED, or an error (a slow client): the stream ends. After an
                    # error the browser reconnects with Last-Event-ID by itself.
                    return
        finally:
            ctx.hub.unsubscribe(feed, outbox)
            metrics.CONNECTIONS.labels("sse").dec()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
