"""Stream a raw 16 kHz mono s16le file to the streamscribe gateway and print the transcript.

    python examples/gateway_client.py --url ws://127.0.0.1:8000/stream --token TOKEN audio.raw

(make one with `ffmpeg -i call.flac -f s16le -ac 1 -ar 16000 audio.raw`). Only the
`websockets` package is needed. The client keeps every frame until the gateway
acknowledges it (AUDIO_ACK), remembers the last event seq, and when the connection
drops it reconnects with RESUME {session_id, last_seq, next_sequence}, re-sends the
unacknowledged frames, and carries on: nothing is lost and no event arrives twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import websockets

FRAME_BYTES = 3200  # 100 ms of 16 kHz s16le mono


class Client:
    def __init__(self, url: str, token: str, audio: bytes, speed: float) -> None:
        self.url, self.token, self.speed = url, token, speed
        self.frames = [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]
        self.session_id: str | None = None
        self.last_seq = 0  # the last event seq received: where a resume continues
        self.acked = 0  # frames 1..acked are durably in Redis
        self.finals: dict[str, dict] = {}
        self.ended = False

    async def run(self) -> str:
        while not self.ended:
            try:
                await self._connection()
            except (OSError, websockets.ConnectionClosedError) as exc:
                print(f"connection lost ({exc}); resuming", file=sys.stderr)
                await asyncio.sleep(0.5)
        ordered = sorted(self.finals.values(), key=lambda s: s["start"])
        return " ".join(s["text"].strip() for s in ordered if s["text"].strip())

    async def _connection(self) -> None:
        # The token as a subprotocol works in browsers too; a header would do here.
        protocols = ["streamscribe.v1", f"bearer.{self.token}"]
        async with websockets.connect(self.url, subprotocols=protocols) as ws:
            if self.session_id is None:
                start = {"type": "START_SESSION", "config": {"sample_rate": 16000}}
                await ws.send(json.dumps(start))
            else:
                resume = {
                    "type": "RESUME",
                    "session_id": self.session_id,
                    "last_seq": self.last_seq,
                    "next_sequence": self.acked + 1,
                }
                await ws.send(json.dumps(resume))
            sender: asyncio.Task[None] | None = None
            try:
                async for raw in ws:
                    message = json.loads(raw)
                    kind = message["type"]
                    if message.get("seq") is not None:
                        self.last_seq = message["seq"]
                    if kind in ("SESSION_STARTED", "SESSION_RESUMED"):
                        self.session_id = message["session_id"]
                        print(f"session {self.session_id}", file=sys.stderr)
                        if message.get("ended"):
                            self.ended = True
                        elif sender is None:
                            sender = asyncio.create_task(self._send(ws))
                    elif kind == "AUDIO_ACK":
                        self.acked = max(self.acked, message["sequence"])
                    elif kind == "PARTIAL":
                        print(f"  ... {message['segment']['text']}", file=sys.stderr)
                    elif kind == "FINALIZED":
                        self.finals[message["id"]] = message["segment"]
                        print(f"[{message['segment']['start']:.1f}s] {message['segment']['text']}")
                    elif kind == "ERROR":
                        print(f"error {message['code']}: {message['message']}", file=sys.stderr)
                    elif kind == "SESSION_ENDED":
                        self.ended = True
            finally:
                if sender is not None:
                    sender.cancel()

    async def _send(self, ws: websockets.ClientConnection) -> None:
        # Binary frames: the sequence is implied (the RESUME's next_sequence, then +1).
        for frame in self.frames[self.acked :]:
            await ws.send(frame)
            await asyncio.sleep(0.1 / self.speed)
        await ws.send(json.dumps({"type": "END_SESSION"}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("file", type=Path, help="raw 16 kHz mono s16le audio")
    p.add_argument("--url", default="ws://127.0.0.1:8000/stream")
    p.add_argument("--token", required=True)
    p.add_argument("--speed", type=float, default=1.0, help="x real time")
    args = p.parse_args()
    text = asyncio.run(Client(args.url, args.token, args.file.read_bytes(), args.speed).run())
    print(f"TRANSCRIPT: {text}")


if __name__ == "__main__":
    main()
