"""`/v1/listen` with the official Deepgram Python SDK over a real stack (redis-server, ingest,
asr with tiny.en): interim and final Results whose text is the push transcript, Finalize
through the bus, refusals at the handshake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets

from bench.reference import normalize_text
from shared.schemas import SessionConfig
from streamscribe.gateway.deepgram_map import DeepgramOptions, parse_options
from tests.support.gateway import TOKEN, GatewayProcess, file_frames
from tests.support.pipeline import FIXTURES

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    # deepgram-sdk 7 imports websockets' legacy client and its InvalidStatusCode, which
    # websockets 14+ deprecates at import; the SDK's code, not ours.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

CONV = FIXTURES / "conv_short.flac"
SPEED = 4.0
FRAME_MS = 100


def _client(base: str, token: str | None = TOKEN) -> Any:
    from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment

    ws = base.replace("http://", "ws://", 1)
    # The SDK's base-URL option: every URL it builds comes from this environment.
    environment = DeepgramClientEnvironment(base=base, production=ws, agent=ws, agent_rest=base)
    return AsyncDeepgramClient(environment=environment, api_key=token or "")


async def _messages(connection: Any, into: list[dict[str, Any]]) -> AsyncIterator[None]:
    async for message in connection:
        into.append(message.model_dump() if hasattr(message, "model_dump") else dict(message))
        yield


async def test_sdk_streams_a_file_and_gets_interim_and_final_results(
    gateway: GatewayProcess, pushed_text: str
) -> None:
    rate, frames = file_frames(CONV, FRAME_MS)
    received: list[dict[str, Any]] = []
    client = _client(gateway.url)
    async with client.listen.v1.connect(
        model="nova-3",
        encoding="linear16",
        sample_rate=rate,
        channels=1,
        interim_results="true",
        utterance_end_ms=1000,
        vad_events="true",
        punctuate="true",
        smart_format="true",
    ) as connection:

        async def send() -> None:
            for frame in frames:
                await connection.send_media(frame)
                await asyncio.sleep(FRAME_MS / 1000 / SPEED)
            await connection.send_keep_alive()
            await connection.send_close_stream()

        sender = asyncio.create_task(send())
        async with asyncio.timeout(180):
            async for _ in _messages(connection, received):
                pass
        await sender

    kinds = [m["type"] for m in received]
    results = [m for m in received if m["type"] == "Results"]
    interim = [m for m in results if not m["is_final"]]
    finals = [m for m in results if m["is_final"]]
    assert interim and finals, kinds
    assert kinds.index("Results") < kinds.index("UtteranceEnd")
    assert "SpeechStarted" in kinds
    assert kinds[-1] == "Metadata" and received[-1]["duration"] == pytest.approx(21.3, abs=0.1)
    assert kinds.index(next(k for k in kinds if k == "Results")) < len(kinds) - 1
    # Interim results of an utterance come before its final.
    first_final = results.index(finals[0])
    assert any(not m["is_final"] for m in results[:first_final])
    text = " ".join(
        m["channel"]["alternatives"][0]["transcript"]
        for m in sorted(finals, key=lambda m: m["start"])
        if m["channel"]["alternatives"][0]["transcript"]
    )
    assert normalize_text(pushed_text), "the push produced a transcript"
    assert text == pushed_text
    for final in finals:
        alternative = final["channel"]["alternatives"][0]
        if not alternative["transcript"]:
            continue
        assert final["speech_final"] is True and final["from_finalize"] is False
        assert final["channel_index"] == [0, 1]
        assert final["metadata"]["request_id"] == received[-1]["request_id"]
        words = alternative["words"]
        assert " ".join(w["punctuated_word"] for w in words) == alternative["transcript"]
        assert all(final["start"] - 0.5 <= w["start"] <= w["end"] for w in words)
        assert 0 < alternative["confidence"] <= 1


async def test_finalize_mid_utterance_returns_a_final_at_once(gateway: GatewayProcess) -> None:
    rate, frames = file_frames(CONV, FRAME_MS)
    # The first utterance is speech from 0.6 s to 2.887 s: stop sending at 1.8 s. The VAD
    # alone would close it only after 0.3 s of silence that never comes.
    cut = int(1.8 * 1000 / FRAME_MS)
    received: list[dict[str, Any]] = []
    client = _client(gateway.url)
    async with client.listen.v1.connect(
        model="nova-3", encoding="linear16", sample_rate=rate, interim_results="false"
    ) as connection:
        for frame in frames[:cut]:
            await connection.send_media(frame)
        await connection.send_finalize()
        async with asyncio.timeout(60):
            async for _ in _messages(connection, received):
                if received[-1]["type"] == "Results" and received[-1]["is_final"]:
                    break
        final = received[-1]
        assert final["from_finalize"] is True, final
        assert final["speech_final"] is False
        assert final["start"] < 1.8 and final["start"] + final["duration"] <= 1.8 + 0.05
        assert final["channel"]["alternatives"][0]["transcript"].lower().startswith("good")
        # The speaker goes on: the rest is a new utterance, closed by the VAD.
        for frame in frames[cut : int(4.0 * 1000 / FRAME_MS)]:
            await connection.send_media(frame)
        await connection.send_close_stream()
        async with asyncio.timeout(120):
            async for _ in _messages(connection, received):
                pass
    later = [m for m in received[1:] if m["type"] == "Results" and m["is_final"]]
    assert later and all(m["from_finalize"] is False for m in later)
    assert all(m["start"] >= 1.8 - 0.05 for m in later)
    assert received[-1]["type"] == "Metadata"


@pytest.mark.parametrize(
    ("token", "status"), [(None, 401), ("wrong", 403)], ids=["no-token", "wrong-token"]
)
async def test_sdk_refused_without_a_valid_token(
    gateway: GatewayProcess, token: str | None, status: int
) -> None:
    from deepgram.core.api_error import ApiError

    client = _client(gateway.url, token)
    with pytest.raises(ApiError) as refused:
        async with client.listen.v1.connect(
            model="nova-3", encoding="linear16", sample_rate=16000
        ) as connection:
            await connection.send_close_stream()
    assert refused.value.status_code == status


async def _handshake(url: str, **kwargs: Any) -> int:
    try:
        async with websockets.connect(url, open_timeout=10, **kwargs) as ws:
            await ws.send(json.dumps({"type": "CloseStream"}))
            async with asyncio.timeout(30):
                while json.loads(await ws.recv())["type"] != "Metadata":
                    pass
            return 101
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


async def test_token_forms_and_refused_queries(gateway: GatewayProcess) -> None:
    base = gateway.url.replace("http://", "ws://", 1) + "/v1/listen"
    query = "?encoding=linear16&sample_rate=16000"
    # Deepgram's browser SDK: `Sec-WebSocket-Protocol: token, <key>`, answered `token`.
    assert await _handshake(base + query, subprotocols=["token", TOKEN]) == 101  # type: ignore[list-item]
    assert await _handshake(base + query, subprotocols=["token", "nope"]) == 403  # type: ignore[list-item]
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert await _handshake(base + query, additional_headers=bearer) == 101
    for bad in ("?encoding=opus&sample_rate=48000", "?sample_rate=16000", "?encoding=linear16"):
        assert await _handshake(base + bad, additional_headers=bearer) == 400, bad


def test_query_maps_onto_a_session_config() -> None:
    options = parse_options(
        {
            "encoding": "linear16",
            "sample_rate": "8000",
            "channels": "2",
            "multichannel": "true",
            "language": "en-US",
            "interim_results": "true",
            "utterance_end_ms": "1000",
            "model": "nova-3",
            "smart_format": "true",
        }
    )
    assert options == DeepgramOptions(
        sample_rate=8000,
        channels=2,
        interim_results=True,
        utterance_end_ms=1000,
        multichannel=True,
        language="en",
    )
    assert options.session_config() == SessionConfig(
        sample_rate=8000, channels=2, channels_as_speakers=True, language="en"
    )
    with pytest.raises(ValueError, match="interim_results"):
        parse_options({"encoding": "linear16", "sample_rate": "16000", "interim_results": "maybe"})
