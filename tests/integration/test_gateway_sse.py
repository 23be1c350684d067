"""SSE on real Redis: `id:` is the event's seq, and reconnecting with Last-Event-ID continues
after it, nothing skipped or repeated; once `done` was delivered a reconnect gets 204."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.bus import Bus
from shared.schemas import Done, DonePayload, Segment, SegmentFinalized
from tests.redis_harness import RealRedis
from tests.support.gateway import auth, gateway_in_process

pytestmark = pytest.mark.timeout(60)


async def _read_events(
    response: httpx.Response, stop_after: int | None = None
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in current:
                events.append(current)
                if stop_after is not None and len(events) >= stop_after:
                    return events
                if current.get("event") == "SESSION_ENDED":
                    return events
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
    return events


async def _publish(bus: Bus, sid: str, first: int, count: int) -> None:
    for index in range(first, first + count):
        # Finals only: a partial followed by its final while a client catches up is
        # coalesced away (the final supersedes it), which this test is not about.
        final = Segment(
            id=f"seg-0-{index}", start=index, end=index + 1, text=f"final {index}", partial=False
        )
        await bus.publish(SegmentFinalized(session_id=sid, id=final.id, payload=final))


async def test_last_event_id_resumes_and_ended_stream_gets_204(
    redis_server: RealRedis, bus: Bus
) -> None:
    async with (
        gateway_in_process(redis_server.url) as base,
        httpx.AsyncClient(base_url=base, headers=auth(), timeout=20) as http,
    ):
        sid = (await http.post("/stream/sessions", json={})).json()["session_id"]
        await _publish(bus, sid, 1, 5)  # seqs 1..5
        url = f"/stream/sessions/{sid}/events"
        async with http.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            first = await _read_events(response, stop_after=4)
        assert [int(e["id"]) for e in first] == [1, 2, 3, 4]
        assert [e["event"] for e in first] == ["FINALIZED"] * 4

        # Live events arrive while nobody listens, then the browser reconnects.
        await _publish(bus, sid, 6, 3)  # seqs 6..8
        await bus.publish(Done(session_id=sid, id="done", payload=DonePayload()))
        headers = {"Last-Event-ID": first[-1]["id"]}
        async with http.stream("GET", url, headers=headers) as response:
            rest = await _read_events(response)
        ids = [int(e["id"]) for e in first + rest]
        assert ids == list(range(1, 10)), "every seq once, in order"
        assert rest[-1]["event"] == "SESSION_ENDED"

        ended = await http.get(url, headers={"Last-Event-ID": "9"})
        assert ended.status_code == 204
