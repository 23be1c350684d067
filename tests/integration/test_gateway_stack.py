"""The gateway over a real stack (redis-server, ingest, asr with tiny.en): /stream with JSON
and binary frames, a SIGKILLed gateway resumed on another, REST DELETE, the client examples.

One stack and one gateway process serve the module; sessions run at 4x real time where the
test is not about timing (each decode costs about a second on a 2-core machine).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets

from bench.reference import normalize_text
from shared import keys
from streamscribe.supervisor import Stack
from tests.support.gateway import (
    TOKEN,
    GatewayProcess,
    StreamRun,
    auth,
    connect,
    file_frames,
    read_until,
    send_frames,
    stream_file,
    ws_url,
)
from tests.support.pipeline import FIXTURES, collect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CONV = FIXTURES / "conv_short.flac"
SPEED = 4.0


def _check_run(run: StreamRun) -> None:
    kinds = [m["type"] for m in run.events]
    seqs = [m["seq"] for m in run.events]
    assert seqs == sorted(set(seqs)), "seq strictly increasing, nothing twice"
    assert kinds[-1] == "SESSION_ENDED", "SESSION_ENDED is last"
    assert "PARTIAL" in kinds and "FINALIZED" in kinds
    first_final = kinds.index("FINALIZED")
    assert "PARTIAL" in kinds[:first_final], "partials arrive before finals"
    for message in run.events:
        assert {"seq", "id", "revision"} <= message.keys()
    assert run.close_codes == [1000]


async def test_json_and_binary_frames_give_the_push_transcript(
    gateway: GatewayProcess, pushed_text: str
) -> None:
    as_json, as_binary = await asyncio.gather(
        stream_file(gateway.url, CONV, binary=False, speed=SPEED),
        stream_file(gateway.url, CONV, binary=True, speed=SPEED),
    )
    assert normalize_text(pushed_text), "the push produced a transcript"
    for run in (as_json, as_binary):
        _check_run(run)
        assert run.final_text() == pushed_text


async def test_gateway_killed_mid_session_resumes_on_another(
    stack: Stack, pushed_text: str, tmp_path: Path
) -> None:
    rate, frames = file_frames(CONV)
    numbered = list(enumerate(frames, start=1))
    first = GatewayProcess(stack.url, tmp_path / "first.log").start()
    second = GatewayProcess(stack.url, tmp_path / "second.log")
    run = StreamRun()
    sent = 0
    try:
        ws = await connect(first.url)
        await ws.send(json.dumps({"type": "START_SESSION", "config": {"sample_rate": rate}}))
        started = await read_until(ws, run, lambda m: m["type"] == "SESSION_STARTED", 10)
        run.session_id = started["session_id"]

        async def produce() -> None:
            nonlocal sent
            for sequence, data in numbered:
                await send_frames(ws, [(sequence, data)], binary=True, frame_s=0.1, speed=2.0)
                sent = sequence
                await asyncio.sleep(0.1 / 2.0)

        reader = asyncio.create_task(read_until(ws, run, lambda m: False, 300))
        producer = asyncio.create_task(produce())
        # Kill once a final has arrived and about half the audio has gone out.
        while not (any(m["type"] == "FINALIZED" for m in run.events) and sent > len(frames) // 2):
            assert not reader.done() and not producer.done()
            await asyncio.sleep(0.05)
        first.kill()
        for task in (reader, producer):
            with pytest.raises((websockets.ConnectionClosed, OSError)):
                await asyncio.wait_for(task, timeout=10)
        before = run.last_seq
        acked = max(run.acked)
        assert acked < len(frames), "the kill came mid-session"

        second.start()
        # The token may come with the RESUME itself instead of the handshake.
        async with websockets.connect(ws_url(second.url), max_size=None) as ws2:
            resume = {
                "type": "RESUME",
                "session_id": run.session_id,
                "last_seq": before,
                "token": TOKEN,
                "next_sequence": acked + 1,
            }
            await ws2.send(json.dumps(resume))
            resumed = await read_until(ws2, run, lambda m: m["type"] == "SESSION_RESUMED", 10)
            assert resumed["last_seq"] == before

            async def finish() -> None:
                # Unacknowledged frames again, then the rest, as binary (sequence implied).
                await send_frames(ws2, numbered[acked:], binary=True, frame_s=0.1, speed=SPEED)
                await ws2.send(json.dumps({"type": "END_SESSION"}))

            finishing = asyncio.create_task(finish())
            await read_until(ws2, run, lambda m: m["type"] == "SESSION_ENDED", 300)
            await finishing
    finally:
        first.kill()
        second.stop()

    seqs = [m["seq"] for m in run.events]
    assert seqs == sorted(set(seqs)), "no event twice, across the reconnect"
    assert any(s > before for s in seqs) and any(s <= before for s in seqs)
    assert run.acked == set(range(1, len(frames) + 1)), "every frame acknowledged"
    # Nothing skipped: every event that cannot be coalesced away reached the client.
    stored = await collect(stack.url, run.session_id)
    kept = {e.seq for e in stored if e.__struct_config__.tag != "partial_segment"}
    assert kept <= set(seqs)
    ended = run.events[-1]
    assert ended["type"] == "SESSION_ENDED"
    # No audio lost: ingest saw every sample and reported no gap.
    duration = len(b"".join(frames)) / 2 / rate
    assert ended["stats"]["duration_s"] == pytest.approx(duration, abs=0.01)
    errors = [m for m in run.events if m["type"] == "ERROR"]
    assert not [m for m in errors if m["code"] == "seq_gap"], errors
    assert run.final_text() == pushed_text


async def test_rest_create_then_delete_ends_the_session_with_done(gateway: GatewayProcess) -> None:
    rate, frames = file_frames(CONV)
    async with httpx.AsyncClient(base_url=gateway.url, headers=auth()) as http:
        created = await http.post("/stream/sessions", json={"config": {"sample_rate": rate}})
        assert created.status_code == 201, created.text
        body = created.json()
        sid = body["session_id"]
        assert body["ws_url"] == ws_url(gateway.url)
        run = StreamRun()
        async with await connect(gateway.url) as ws:
            await ws.send(json.dumps({"type": "START_SESSION", "session_id": sid}))
            await read_until(ws, run, lambda m: m["type"] == "SESSION_STARTED", 10)
            await send_frames(
                ws, list(enumerate(frames[:30], 1)), binary=True, frame_s=0.1, speed=10
            )
            await read_until(ws, run, lambda m: m.get("sequence") == 30, 10)
            deleted = await http.delete(f"/stream/sessions/{sid}")
            assert deleted.status_code == 202 and deleted.json()["state"] == "stopping"
            ended = await read_until(ws, run, lambda m: m["type"] == "SESSION_ENDED", 120)
        assert ended["stats"]["reason"] == "stopped"
        assert ended["stats"]["duration_s"] == pytest.approx(3.0, abs=0.01)
        status = (await http.get(f"/stream/sessions/{sid}/status")).json()
        assert status["state"] == "done" and status["last_seq"] == ended["seq"]
        again = await http.delete(f"/stream/sessions/{sid}")
        assert again.status_code == 200 and again.json()["state"] == "done"
        transcript = (await http.get(f"/stream/sessions/{sid}/transcript")).json()
        assert transcript["schema_version"] == 2 and transcript["meta"]["complete"]
        # The gateway's ownership record expires like every key it writes.
        import redis as redis_sync

        client = redis_sync.Redis.from_url(gateway.env["STREAMSCRIBE_REDIS_URL"])
        try:
            assert 0 < client.ttl(keys.gateway_owner(sid)) <= 2 * 24 * 3600
        finally:
            client.close()


def _raw_audio(tmp_path: Path) -> Path:
    _rate, frames = file_frames(CONV)
    raw = tmp_path / "conv_short.raw"
    raw.write_bytes(b"".join(frames))
    return raw


def test_python_example_client(gateway: GatewayProcess, pushed_text: str, tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "gateway_client.py"
    out = subprocess.run(
        [sys.executable, str(example), str(_raw_audio(tmp_path)), "--url", ws_url(gateway.url),
         "--token", TOKEN, "--speed", str(SPEED)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-1] == f"TRANSCRIPT: {pushed_text}"


def test_javascript_example_client(
    gateway: GatewayProcess, pushed_text: str, tmp_path: Path
) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("LOUD SKIP: node/npm not installed; the JavaScript example is untested")
    workdir = tmp_path / "js"
    workdir.mkdir()
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", "ws@8"],
        cwd=workdir, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    if installed.returncode != 0:
        pytest.skip(f"LOUD SKIP: `npm install ws` failed (no registry?): {installed.stderr[-500:]}")
    example = Path(__file__).parents[2] / "examples" / "gateway_client.mjs"
    shutil.copy(example, workdir / "gateway_client.mjs")
    out = subprocess.run(
        [node, "gateway_client.mjs", str(_raw_audio(tmp_path)), "--url", ws_url(gateway.url),
         "--token", TOKEN, "--speed", str(SPEED)],
        cwd=workdir, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-1] == f"TRANSCRIPT: {pushed_text}"
