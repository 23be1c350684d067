"""A client that stops reading: its queue stays bounded, its partials coalesce, other
clients are unaffected, and once finals overflow it is disconnected with `slow_consumer`
(close 1013) and can resume without losing or repeating anything.

Events are published straight into real Redis with Bus.publish (no stages needed).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from prometheus_client import REGISTRY

from shared.bus import Bus
from shared.schemas import Done, DonePayload, PartialSegment, Segment, SegmentFinalized
from tests.redis_harness import RealRedis
from tests.support.gateway import auth, gateway_in_process, gateway_settings, ws_url

pytestmark = pytest.mark.timeout(120)

QUEUE = 20
PARTIALS = 150
FINALS = 60
# Big enough that 150 of them (15 MB) overflow every socket buffer on the way.
PARTIAL_TEXT = "x" * 100_000


def _slow_total() -> float:
    return REGISTRY.get_sample_value("streamscribe_gateway_slow_consumers_total") or 0.0


def _depth() -> float:
    return REGISTRY.get_sample_value("streamscribe_gateway_queue_depth") or 0.0


async def _resume(base: str, sid: str, last_seq: int) -> websockets.ClientConnection:
    ws = await websockets.connect(
        ws_url(base), additional_headers=auth(), max_size=None, max_queue=4
    )
    await ws.send(json.dumps({"type": "RESUME", "session_id": sid, "last_seq": last_seq}))
    assert json.loads(await ws.recv())["type"] == "SESSION_RESUMED"
    return ws


async def _drain(ws: websockets.ClientConnection) -> list[dict[str, Any]]:
    messages = []
    try:
        while True:
            messages.append(json.loads(await ws.recv()))
    except websockets.ConnectionClosed:
        return messages


async def test_slow_client_is_bounded_coalesced_then_dropped_and_resumes(
    redis_server: RealRedis, bus: Bus
) -> None:
    settings = gateway_settings(queue_size=QUEUE, close_timeout_s=60)
    async with gateway_in_process(redis_server.url, settings) as base:
        import httpx

        async with httpx.AsyncClient(base_url=base, headers=auth()) as http:
            sid = (await http.post("/stream/sessions", json={})).json()["session_id"]
        slow = await _resume(base, sid, 0)  # reads nothing until the end
        fast = await _resume(base, sid, 0)
        fast_messages = asyncio.create_task(_drain(fast))
        slow_before = _slow_total()

        segment = Segment(id="seg-0-0", start=0.0, end=1.0, text=PARTIAL_TEXT)
        depths = []
        for revision in range(1, PARTIALS + 1):
            await bus.publish(
                PartialSegment(session_id=sid, id="seg-0-0", revision=revision, payload=segment)
            )
            depths.append(_depth())
        for index in range(1, FINALS + 1):
            final = Segment(
                id=f"seg-0-{index}",
                start=index,
                end=index + 1,
                text=f"final {index}",
                partial=False,
            )
            await bus.publish(SegmentFinalized(session_id=sid, id=final.id, payload=final))
            depths.append(_depth())
            # A reading client keeps up with finals at this pace; one that reads nothing
            # cannot, whatever the pace.
            await asyncio.sleep(0.02)
        await bus.publish(Done(session_id=sid, id="done", payload=DonePayload()))

        # The fast client gets everything while the slow one is stuck.
        fast_seen = await asyncio.wait_for(fast_messages, timeout=60)
        fast_finals = [m["id"] for m in fast_seen if m["type"] == "FINALIZED"]
        assert len(fast_finals) == FINALS and fast_seen[-1]["type"] == "SESSION_ENDED"
        assert fast.close_code == 1000
        for _ in range(600):
            if _slow_total() > slow_before:
                break
            await asyncio.sleep(0.05)
        assert _slow_total() == slow_before + 1, "the slow client was dropped, only it"
        # Bounded: partials coalesce, so the slow client's queue never held more than
        # QUEUE messages (plus the fast client's few in flight).
        assert max(depths) <= QUEUE + 5, max(depths)

        slow_seen = await _drain(slow)
        assert slow.close_code == 1013
        last = slow_seen[-1]
        assert last["type"] == "ERROR" and last["code"] == "slow_consumer" and last["recoverable"]
        partials = [m for m in slow_seen if m["type"] == "PARTIAL"]
        assert 0 < len(partials) < PARTIALS, "partials were coalesced"

        # Resume after the last event received: the rest, nothing twice.
        resumed_from = max(m["seq"] for m in slow_seen if m.get("seq") is not None)
        again = await _resume(base, sid, resumed_from)
        rest = await _drain(again)
        assert again.close_code == 1000 and rest[-1]["type"] == "SESSION_ENDED"
        seqs = [m["seq"] for m in slow_seen + rest if m.get("seq") is not None]
        assert seqs == sorted(set(seqs))
        slow_finals = [m["id"] for m in slow_seen + rest if m["type"] == "FINALIZED"]
        assert slow_finals == fast_finals, "every final exactly once, in order"
