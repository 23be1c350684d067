"""`python -m bench.gateway`: what the gateway adds and holds, on a real redis-server.

1. Latency: N clients (default 100), each following its own session over WebSocket /stream,
   while a publisher process appends events with Bus.publish. Latency is receive time minus
   the event's own `emitted_at` (both this machine's clock): Redis publish -> WebSocket
   delivery. The same events read straight from Redis by a few plain consumers give the
   baseline that any consumer pays; the difference is what the gateway adds.
2. Idle connections: open N (default 1000) authenticated connections, each answered a PING,
   and read the gateway process's RSS before and after: memory per connection.
3. Fan-out: one session, M subscribers (default 200), every event delivered to each.

No stages run: events are synthetic finals published into sessions created through the
gateway. Prints Markdown tables and the machine; writes bench/results/gateway.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets

from bench.machine import machine_info, source_revision
from bench.report import table
from shared.bus import Bus, connect
from shared.consumer import read_event_json
from shared.schemas import Done, DonePayload, Segment, SegmentFinalized
from shared.settings import BusSettings
from streamscribe.embedded import RedisServerProcess, free_port

RESULTS = Path(__file__).parent / "results"
TOKEN = "bench-token"
P50_LIMIT_MS = 5.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    p.add_argument("--clients", type=int, default=100, help="latency: subscribed clients (100)")
    p.add_argument("--rate", type=float, default=5.0, help="events/s per session (5)")
    p.add_argument("--duration", type=float, default=10.0, help="latency run seconds (10)")
    p.add_argument("--direct", type=int, default=10, help="baseline Redis readers (10)")
    p.add_argument("--idle", type=int, default=1000, help="idle connections (1000)")
    p.add_argument("--fanout", type=int, default=200, help="subscribers of one session (200)")
    p.add_argument("--fanout-events", type=int, default=100, help="events to fan out (100)")
    return p.parse_args(argv)


def _percentiles(values_s: list[float]) -> dict[str, float | int | None]:
    if not values_s:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ms = sorted(v * 1000 for v in values_s)

    def at(q: float) -> float:
        return round(ms[min(len(ms) - 1, int(q * len(ms)))], 3)

    return {"n": len(ms), "p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "max_ms": round(ms[-1], 3), "mean_ms": round(statistics.fmean(ms), 3)}  # fmt: skip


# --- publisher (its own process, so it does not share the clients' event loop) --------------


def _publish_process(url: str, sids: list[str], rate: float, duration: float) -> None:
    asyncio.run(_publish(url, sids, rate, duration))


async def _publish(url: str, sids: list[str], rate: float, duration: float) -> None:
    redis = connect(BusSettings(redis_url=url))
    bus = Bus(redis, BusSettings(redis_url=url))
    interval = 1.0 / (rate * len(sids))
    started = time.monotonic()
    index = 0
    try:
        while time.monotonic() - started < duration:
            sid = sids[index % len(sids)]
            seg_no = index // len(sids)
            seg = Segment(id=f"seg-0-{seg_no}", start=seg_no, end=seg_no + 1,
                          text="a final segment of about this length", partial=False)  # fmt: skip
            await bus.publish(SegmentFinalized(session_id=sid, id=seg.id, payload=seg))
            index += 1
            delay = started + index * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        for sid in sids:
            await bus.publish(Done(session_id=sid, id="done", payload=DonePayload()))
    finally:
        await redis.aclose()


def _start_publisher(url: str, sids: list[str], rate: float, duration: float) -> Any:
    proc = multiprocessing.get_context("spawn").Process(
        target=_publish_process, args=(url, sids, rate, duration)
    )
    proc.start()
    return proc


# --- clients ---------------------------------------------------------------------------------


async def _create_sessions(base: str, count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as h:
        sids = []
        for _ in range(count):
            response = await h.post("/stream/sessions", json={})
            response.raise_for_status()
            sids.append(response.json()["session_id"])
        return sids


async def _subscribe(base: str, sid: str) -> websockets.ClientConnection:
    ws = await websockets.connect(
        base.replace("http://", "ws://") + "/stream",
        additional_headers={"Authorization": f"Bearer {TOKEN}"},
        max_size=None,
    )
    await ws.send(json.dumps({"type": "RESUME", "session_id": sid, "last_seq": 0}))
    reply = json.loads(await ws.recv())
    assert reply["type"] == "SESSION_RESUMED", reply
    return ws


async def _follow_ws(ws: websockets.ClientConnection, latencies: list[float]) -> int:
    count = 0
    async for raw in ws:
        now = time.time()
        message = json.loads(raw)
        if message.get("emitted_at"):
            latencies.append(now - message["emitted_at"])
            count += 1
        if message["type"] == "SESSION_ENDED":
            break
    await ws.close()
    return count


async def _follow_redis(url: str, sid: str, latencies: list[float]) -> None:
    redis = connect(BusSettings(redis_url=url, block_ms=1000))
    try:
        async for raw in read_event_json(redis, sid, follow=True, block_ms=1000):
            now = time.time()
            latencies.append(now - json.loads(raw)["emitted_at"])
    finally:
        await redis.aclose()


async def latency_run(
    url: str, base: str, gateway: psutil.Process, args: argparse.Namespace
) -> dict[str, Any]:
    sids = await _create_sessions(base, args.clients)
    sockets = await asyncio.gather(*(_subscribe(base, sid) for sid in sids))
    ws_latencies: list[float] = []
    direct_latencies: list[float] = []
    readers = [asyncio.create_task(_follow_ws(ws, ws_latencies)) for ws in sockets]
    direct = [asyncio.create_task(_follow_redis(url, sid, direct_latencies))
              for sid in sids[: args.direct]]  # fmt: skip
    cpu_before = sum(gateway.cpu_times()[:2])
    began = time.monotonic()
    publisher = _start_publisher(url, sids, args.rate, args.duration)
    await asyncio.gather(*readers, *direct)
    elapsed = time.monotonic() - began
    publisher.join()
    cpu = sum(gateway.cpu_times()[:2]) - cpu_before
    ws = _percentiles(ws_latencies)
    baseline = _percentiles(direct_latencies)
    added = {k: _difference(ws[k], baseline[k]) for k in ("p50_ms", "p95_ms")}
    return {
        "clients": args.clients,
        "events_per_s": args.clients * args.rate,
        "websocket": ws,
        "redis_direct": baseline,
        "added": added,
        "gateway_cpu_cores": round(cpu / elapsed, 3),
    }


async def _idle_client(base: str) -> websockets.ClientConnection:
    ws = await websockets.connect(
        base.replace("http://", "ws://") + "/stream",
        additional_headers={"Authorization": f"Bearer {TOKEN}"},
        ping_interval=None,
    )
    await ws.send(json.dumps({"type": "PING", "timestamp": 1}))
    assert json.loads(await ws.recv())["type"] == "PONG"
    return ws


async def idle_run(base: str, gateway: psutil.Process, count: int) -> dict[str, Any]:
    rss_before = gateway.memory_info().rss
    sockets: list[websockets.ClientConnection] = []
    began = time.monotonic()
    try:
        async with asyncio.timeout(180):
            while len(sockets) < count:
                batch = min(100, count - len(sockets))
                sockets += await asyncio.gather(*(_idle_client(base) for _ in range(batch)))
        await asyncio.sleep(1.0)
        rss_after = gateway.memory_info().rss
        async with httpx.AsyncClient(base_url=base) as http:
            metrics = (await http.get("/metrics")).text
        gauge = 'streamscribe_gateway_connections{kind="websocket"}'
        open_now = next(
            float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(gauge)
        )
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "connections": len(sockets),
        "gateway_reports_open": int(open_now),
        "open_s": round(time.monotonic() - began, 2),
        "rss_before_mib": round(rss_before / 2**20, 1),
        "rss_after_mib": round(rss_after / 2**20, 1),
        "kib_per_connection": round((rss_after - rss_before) / len(sockets) / 1024, 1),
    }


async def fanout_run(url: str, base: str, subscribers: int, events: int) -> dict[str, Any]:
    (sid,) = await _create_sessions(base, 1)
    sockets = []
    for start in range(0, subscribers, 50):
        sockets += await asyncio.gather(
            *(_subscribe(base, sid) for _ in range(min(50, subscribers - start)))
        )
    latencies: list[float] = []
    readers = [asyncio.create_task(_follow_ws(ws, latencies)) for ws in sockets]
    began = time.monotonic()
    publisher = _start_publisher(url, [sid], events / 5.0, 5.0)
    counts = await asyncio.gather(*readers)
    publisher.join()
    return {
        "subscribers": subscribers,
        "events": min(counts),
        "delivered": sum(counts),
        "every_subscriber_got_every_event": len(set(counts)) == 1,
        "seconds": round(time.monotonic() - began, 2),
        "latency": _percentiles(latencies),
    }


# --- the run ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _gateway(url: str) -> Any:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STREAMSCRIBE_")},
        "STREAMSCRIBE_REDIS_URL": url,
        "STREAMSCRIBE_GATEWAY_PORT": str(port),
        "STREAMSCRIBE_GATEWAY_TOKENS": TOKEN,
        "STREAMSCRIBE_GATEWAY_MAX_SESSIONS_PER_TOKEN": "100000",
        "STREAMSCRIBE_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen([sys.executable, "-m", "streamscribe.cli", "gateway"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.1)
        yield base, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {"machine": machine_info(), "source": source_revision()}
    redis = RedisServerProcess().start()
    try:
        with _gateway(redis.url) as (base, gateway):
            results["latency"] = asyncio.run(latency_run(redis.url, base, gateway, args))
            results["idle"] = asyncio.run(idle_run(base, gateway, args.idle))
            results["fanout"] = asyncio.run(
                fanout_run(redis.url, base, args.fanout, args.fanout_events)
            )
    finally:
        redis.close()
    print(render(results))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gateway.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


def render(results: dict[str, Any]) -> str:
    lat, idle, fan = results["latency"], results["idle"], results["fanout"]
    ws, direct, added = lat["websocket"], lat["redis_direct"], lat["added"]
    machine = results["machine"]
    versions = machine["versions"]
    rows = [
        [f"WebSocket, {lat['clients']} clients ({lat['events_per_s']:g} events/s)",
         str(ws["n"]), str(ws["p50_ms"]), str(ws["p95_ms"]), str(ws["p99_ms"])],
        ["Redis direct (plain XREAD consumers, baseline)",
         str(direct["n"]), str(direct["p50_ms"]), str(direct["p95_ms"]), str(direct["p99_ms"])],
        ["difference (gateway - direct)", "", str(added["p50_ms"]), str(added["p95_ms"]), ""],
        [f"fan-out: 1 session -> {fan['subscribers']} subscribers", str(fan["latency"]["n"]),
         str(fan["latency"]["p50_ms"]), str(fan["latency"]["p95_ms"]),
         str(fan["latency"]["p99_ms"])],
    ]  # fmt: skip
    verdict = "meets" if (ws["p50_ms"] or 0) <= P50_LIMIT_MS else "misses"
    lines = [
        "## Gateway",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cpus']} CPUs, {machine['ram_gib']} GiB, "
        f"Python {versions['python']}, redis-server {versions['redis-server']}",
        "",
        "Latency: Redis publish -> message received (event's emitted_at vs receive time)",
        "",
        table(["path", "events", "p50 ms", "p95 ms", "p99 ms"], rows),
        "",
        f"The WebSocket p50 ({ws['p50_ms']} ms) bounds what the gateway adds from above: it "
        f"{verdict} the {P50_LIMIT_MS:g} ms target. Gateway CPU during the latency run: "
        f"{lat['gateway_cpu_cores']} cores.",
        "",
        f"Idle connections: {idle['connections']} held (gateway reports "
        f"{idle['gateway_reports_open']} open), RSS {idle['rss_before_mib']} -> "
        f"{idle['rss_after_mib']} MiB, {idle['kib_per_connection']} KiB per connection "
        f"(opened in {idle['open_s']} s).",
        "",
        f"Fan-out: {fan['events']} events to each of {fan['subscribers']} subscribers, "
        f"{fan['delivered']} deliveries, all complete: {fan['every_subscriber_got_every_event']}.",
    ]
    return "\n".join(lines)


def _difference(a: float | None, b: float | None) -> float | None:
    """a - b in ms, or None when either side has no value."""
    return None if a is None or b is None else round(a - b, 3)


if __name__ == "__main__":
    sys.exit(main())
