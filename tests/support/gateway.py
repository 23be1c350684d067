"""Helpers for gateway tests: the gateway in-process or as a process, and a /stream client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from shared.settings import BusSettings, Settings
from streamscribe.audio_file import decode, frame_samples, probe, split_frames
from streamscribe.embedded import free_port
from streamscribe.gateway.server import uvicorn_config
from streamscribe.gateway.settings import GatewaySettings

TOKEN = "test-token-a"
OTHER_TOKEN = "test-token-b"
SECRET = "test-secret"


def gateway_settings(**overrides: Any) -> GatewaySettings:
    base = GatewaySettings(
        port=free_port(), tokens=(TOKEN, OTHER_TOKEN), token_secret=SECRET, close_timeout_s=5
    )
    return GatewaySettings(
        **{**{f: getattr(base, f) for f in base.__dataclass_fields__}, **overrides}
    )


@contextlib.asynccontextmanager
async def gateway_in_process(
    redis_url: str, settings: GatewaySettings | None = None
) -> AsyncIterator[str]:
    """The gateway app on uvicorn in this event loop; yields its base URL."""
    gateway = settings or gateway_settings()
    config = uvicorn_config(gateway, Settings(bus=BusSettings(redis_url=redis_url, block_ms=200)))
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind((gateway.host, gateway.port))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://{gateway.host}:{gateway.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)
        sock.close()


class GatewayProcess:
    """`streamscribe gateway` as a child process (what a test SIGKILLs)."""

    def __init__(self, redis_url: str, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STREAMSCRIBE_")},
            "STREAMSCRIBE_REDIS_URL": redis_url,
            "STREAMSCRIBE_BLOCK_MS": "200",
            "STREAMSCRIBE_GATEWAY_PORT": str(self.port),
            "STREAMSCRIBE_GATEWAY_TOKENS": f"{TOKEN},{OTHER_TOKEN}",
            "STREAMSCRIBE_GATEWAY_TOKEN_SECRET": SECRET,
            **env,
        }
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> GatewayProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamscribe.cli", "gateway"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            assert time.monotonic() < deadline, "gateway not ready"
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/stream"


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def file_frames(path: Path, frame_ms: float = 100) -> tuple[int, list[bytes]]:
    """(sample rate, s16le frames) of a mono file, as Producer.push_file cuts them."""
    info = probe(path)
    return info.sample_rate, list(
        split_frames(decode(info), frame_samples(info.sample_rate, frame_ms))
    )


@dataclass
class StreamRun:
    """What one /stream client saw, across reconnects."""

    session_id: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)
    close_codes: list[int | None] = field(default_factory=list)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("seq") is not None]

    @property
    def last_seq(self) -> int:
        return max((m["seq"] for m in self.events), default=0)

    def final_text(self) -> str:
        finals: dict[str, dict[str, Any]] = {}
        for m in self.events:
            if m["type"] == "FINALIZED" and m["segment"]["text"].strip():
                finals[m["id"]] = m["segment"]
        ordered = sorted(finals.values(), key=lambda s: (s["start"], s.get("channel") or 0))
        return " ".join(s["text"].strip() for s in ordered)


async def connect(base: str, token: str = TOKEN) -> ClientConnection:
    return await websockets.connect(
        ws_url(base), additional_headers=auth(token), max_size=None, open_timeout=10
    )


async def read_until(
    ws: ClientConnection, run: StreamRun, stop: Callable[[dict[str, Any]], bool], timeout_s: float
) -> dict[str, Any]:
    """Record messages until `stop(message)`; returns that message."""
    async with asyncio.timeout(timeout_s):
        while True:
            message = json.loads(await ws.recv())
            run.messages.append(message)
            if message["type"] == "AUDIO_ACK":
                run.acked.add(message["sequence"])
            if stop(message):
                return message


async def send_frames(
    ws: ClientConnection,
    frames: list[tuple[int, bytes]],
    *,
    binary: bool,
    frame_s: float,
    speed: float,
) -> None:
    """Send (sequence, data) frames paced at `speed` x real time."""
    started = time.monotonic()
    for index, (sequence, data) in enumerate(frames):
        delay = started + index * frame_s / speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if binary:
            await ws.send(data)
        else:
            payload = {
                "type": "AUDIO_CHUNK",
                "sequence": sequence,
                "data": base64.b64encode(data).decode(),
            }
            await ws.send(json.dumps(payload))


async def stream_file(
    base: str, path: Path, *, binary: bool, speed: float, frame_ms: float = 100
) -> StreamRun:
    """Start a session on /stream, send the file, END_SESSION, read until SESSION_ENDED."""
    rate, frames = file_frames(path, frame_ms)
    run = StreamRun()
    async with await connect(base) as ws:
        await ws.send(json.dumps({"type": "START_SESSION", "config": {"sample_rate": rate}}))
        started = await read_until(ws, run, lambda m: m["type"] == "SESSION_STARTED", 10)
        run.session_id = started["session_id"]
        numbered = list(enumerate(frames, start=1))

        async def produce() -> None:
            await send_frames(ws, numbered, binary=binary, frame_s=frame_ms / 1000, speed=speed)
            await ws.send(json.dumps({"type": "END_SESSION"}))

        sender = asyncio.create_task(produce())
        await read_until(ws, run, lambda m: m["type"] == "SESSION_ENDED", 240)
        await sender
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.recv()
        run.close_codes.append(ws.close_code)
    assert run.acked == set(range(1, len(frames) + 1)), "every frame acknowledged"
    return run
