"""End to end on real Redis, real worker processes and the real tiny.en model."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import streamscribe
from shared.schemas import (
    AnalyticsSnapshot,
    Done,
    Error,
    PartialSegment,
    Ready,
    SegmentEnriched,
    SegmentFinalized,
    TurnUpdated,
    decode_event,
)
from streamscribe import Subscriber
from streamscribe.supervisor import Stack
from tests.support.pipeline import (
    FIXTURES,
    allowed_gap,
    assert_consistent,
    collect,
    offline_text,
    push,
    reference,
    reference_text,
    running_stack,
    transcript_text,
    wer,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack") / "workers.log") as running:
        yield running


@pytest.fixture(scope="module")
def sessions(stack: Stack) -> dict[str, list]:
    """Three concurrent sessions: mono at real-time pace, stereo and noise at twice it.

    (Three sessions at 2x saturate one asr worker on 2 cores; partials are then coalesced
    away by design, so the mono session that checks partials runs at real-time pace.)
    """

    async def one(name: str, speed: float, stereo: bool = False) -> list:
        sid = await push(stack.url, name, speed=speed, channels_as_speakers=stereo)
        return await collect(stack.url, sid)

    async def all_three() -> dict[str, list]:
        mono, stereo, noise = await asyncio.gather(
            one("conv_short", 1.0), one("call_stereo", 2.0, stereo=True), one("noise", 2.0)
        )
        return {"conv_short": mono, "call_stereo": stereo, "noise": noise}

    return asyncio.run(all_three())


@pytest.mark.parametrize("name", ["conv_short", "call_stereo", "noise"])
def test_event_stream_is_consistent(sessions: dict[str, list], name: str) -> None:
    events = sessions[name]
    assert_consistent(events)
    assert isinstance(events[0], Ready)
    assert not [e for e in events if isinstance(e, Error)], "clean input raises no error events"


def test_mono_streaming_wer_close_to_offline(sessions: dict[str, list]) -> None:
    events = sessions["conv_short"]
    ref = reference_text("conv_short")
    streaming = wer(ref, transcript_text(events))
    offline = wer(ref, offline_text("conv_short"))
    assert streaming <= offline + allowed_gap(ref), (streaming, offline, transcript_text(events))
    partials = [e for e in events if isinstance(e, PartialSegment)]
    finals = [e for e in events if isinstance(e, SegmentFinalized)]
    assert partials and len(finals) == 6, "six utterances, each finalized, partials before"
    # Partials from the periodic (greedy) lane say beam 1; finals the final beam and the
    # decode's scores (the docs promise them; they were null before).
    assert any(p.payload.asr is not None and p.payload.asr.beam_size == 1 for p in partials)
    for final in finals:
        seg = final.payload
        assert seg.words and seg.asr is not None and seg.asr.model == "tiny.en"
        assert seg.asr.beam_size == 5
        assert seg.avg_logprob is not None and seg.avg_logprob < 0
        assert seg.no_speech_prob is not None and 0 <= seg.no_speech_prob <= 1
        assert all(w.start <= w.end for w in seg.words) and seg.start <= seg.end


# Known gap (docs/BENCHMARKS.md, issue note): decoding call_stereo channel 1 (the en-gb
# female voice) one utterance at a time gives 20-32 % WER where tiny.en on the whole
# channel gives 4.5 %; the offline pass's encoder sees the channel's later speech.
# This bound guards against regressions; it is not the 2-point target.
STEREO_WER_BOUND = 0.35


def test_stereo_channels_are_speakers_with_their_own_text(sessions: dict[str, list]) -> None:
    events = sessions["call_stereo"]
    finals = [e.payload for e in events if isinstance(e, SegmentFinalized) and e.payload.text]
    for utterance in reference("call_stereo")["utterances"]:
        overlapping = [
            s for s in finals if s.start < utterance["end_s"] and s.end > utterance["start_s"]
        ]
        assert overlapping, f"no final for {utterance['text']!r}"
        assert {s.channel for s in overlapping} == {utterance["channel"]}
        assert {s.speaker_id for s in overlapping} == {f"spk_{utterance['channel']}"}
    for channel in (0, 1):
        ref = reference_text("call_stereo", channel)
        assert wer(ref, transcript_text(events, channel)) <= STEREO_WER_BOUND


def test_noise_gives_no_text(sessions: dict[str, list]) -> None:
    assert transcript_text(sessions["noise"]) == ""


@pytest.mark.parametrize("name", ["conv_short", "call_stereo"])
def test_every_final_is_enriched_once_and_turned(sessions: dict[str, list], name: str) -> None:
    events = sessions[name]
    finals = {e.payload.id for e in events if isinstance(e, SegmentFinalized) and e.payload.text}
    enriched = [e.payload for e in events if isinstance(e, SegmentEnriched)]
    assert sorted(p.segment_id for p in enriched) == sorted(finals), "exactly one each"
    for payload in enriched:
        assert payload.extraction_status["prosody"] == "ok", payload.extraction_status
        assert payload.audio_state["rendering"].startswith("[audio:")
    final_turns = [
        e.payload for e in events if isinstance(e, TurnUpdated) and not e.payload.partial
    ]
    assert {s for t in final_turns for s in t.segment_ids} == finals, "every final in a turn"
    snapshots = [e.payload for e in events if isinstance(e, AnalyticsSnapshot)]
    assert snapshots[-1].turns_final
    done = events[-1]
    assert isinstance(done, Done)
    assert done.payload.stages == ["ingest", "asr", "enrich", "semantic"]
    assert done.payload.unfinished == []
    assert done.payload.counts["segment_enriched"] == len(finals)
    assert set(done.payload.processing_s) == set(done.payload.stages)


def test_transcript_cli_writes_v2_json(
    stack: Stack, sessions: dict[str, list], tmp_path: Path
) -> None:
    import msgspec

    from shared.schemas import Transcript
    from streamscribe.cli import main

    sid = sessions["conv_short"][0].session_id
    out = tmp_path / "t.json"
    assert main(["transcript", sid, "--redis-url", stack.url, "--out", str(out)]) == 0
    transcript = msgspec.json.decode(out.read_bytes(), type=Transcript)
    assert transcript.schema_version == 2 and transcript.meta.stream.session_id == sid
    assert transcript.meta.complete and transcript.meta.stream.stream_version == 1
    assert transcript.text == transcript_text(sessions["conv_short"])
    assert all(not s.partial for s in transcript.segments)


def test_redis_cli_producer_from_protocol_doc_gets_a_transcript(
    stack: Stack, tmp_path: Path
) -> None:
    """Runs the producer block of docs/PROTOCOL.md verbatim, with redis-cli only."""
    import os
    import re
    import subprocess

    import soundfile as sf

    from tests.support.pipeline import FIXTURES, redis_cli

    doc = (Path(__file__).parents[2] / "docs" / "PROTOCOL.md").read_text()
    block = re.search(r"<!-- producer:begin -->\n```bash\n(.*?)```", doc, re.S)
    assert block, "docs/PROTOCOL.md lost its producer example"
    audio, rate = sf.read(FIXTURES / "conv_short.flac", dtype="int16")
    assert rate == 16000
    raw = tmp_path / "audio.raw"
    raw.write_bytes(audio.tobytes())
    cli_dir = str(Path(redis_cli()).parent)
    env = {
        **os.environ,
        "PATH": f"{cli_dir}:{os.environ['PATH']}",
        "STREAMSCRIBE_REDIS_URL": stack.url,
        "SID": "from-redis-cli",
        "AUDIO": str(raw),
    }
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.group(1)], env=env, check=True, timeout=120
    )
    events = asyncio.run(collect(stack.url, "from-redis-cli"))
    assert_consistent(events)
    ref = reference_text("conv_short")
    assert wer(ref, transcript_text(events)) <= wer(ref, offline_text("conv_short")) + allowed_gap(
        ref
    )


def test_asr_worker_exports_its_final_lag(stack: Stack, sessions: dict[str, list]) -> None:
    """VAD end mark read -> final published, as Prometheus sees it on /metrics."""
    import urllib.request

    (url,) = stack.health_urls("asr")
    body = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    (count_line,) = [
        line
        for line in body.splitlines()
        if line.startswith("streamscribe_asr_final_lag_seconds_count")
    ]
    assert float(count_line.split()[-1]) >= 6, "one observation per VAD-closed final at least"


def test_audio_log_is_released_once_asr_is_done(stack: Stack, sessions: dict[str, list]) -> None:
    """asr and enrich read the audio log: after `done` neither needs any of it."""
    import msgspec

    from shared import keys
    from shared.bus import connect
    from shared.settings import BusSettings

    async def check() -> tuple[int, str, str]:
        redis = connect(BusSettings(redis_url=stack.url))
        try:
            sid = sessions["conv_short"][0].session_id
            resume_ids = []
            for stage in ("asr", "enrich"):
                raw = await redis.hget(keys.checkpoints(sid), stage)
                resume_ids.append(msgspec.json.decode(raw)["resume_id"])
            ((first, _),) = await redis.xrange(keys.audio(sid), count=1)
            oldest = min(resume_ids, key=lambda i: tuple(map(int, i.split("-"))))
            return await redis.xlen(keys.audio(sid)), first.decode(), oldest
        finally:
            await redis.aclose()

    length, first, resume_id = asyncio.run(check())
    assert first == resume_id, "trimmed exactly to the oldest reader's checkpoint"
    assert length == 1, "only the last entry (the end mark) is left"


def test_events_follow_started_before_the_producer_prints_the_whole_session(
    stack: Stack,
) -> None:
    """Consumers routinely subscribe first: `events --follow` waits for the session."""
    sid = "follow-before-push"
    cli = [sys.executable, "-m", "streamscribe.cli"]
    url = ["--redis-url", stack.url]
    follower = subprocess.Popen(
        [*cli, "events", sid, "--follow", *url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        time.sleep(5)
        assert follower.poll() is None, follower.stderr.read() if follower.stderr else ""
        pushed = subprocess.run(
            [*cli, "push", str(FIXTURES / "noise.flac"), "--session", sid, "--speed", "4", *url],
            capture_output=True,
            timeout=120,
        )
        assert pushed.returncode == 0, pushed.stderr
        out, err = follower.communicate(timeout=120)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    events = [decode_event(line) for line in out.splitlines()]
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "the whole session"
    assert isinstance(events[0], Ready) and isinstance(events[-1], Done), "exits at done"


def test_llm_context_of_a_live_session_from_the_cli_and_the_sdk(stack: Stack) -> None:
    sid = "context-live"
    cli = [sys.executable, "-m", "streamscribe.cli"]
    url = ["--redis-url", stack.url]
    follower = subprocess.Popen(
        [*cli, "context", sid, "--follow", *url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        asyncio.run(
            push(stack.url, "call_stereo", speed=2.0, channels_as_speakers=True, session_id=sid)
        )
        out, err = follower.communicate(timeout=120)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    windows = out.decode().split("--- seq ")[1:]
    assert len(windows) >= 3, "the window was printed again as turns came in"
    last = windows[-1].split("\n", 1)[1].strip().splitlines()
    assert all(re.match(r"^\[\d+\.\ds\] spk_[01]: \S", line) for line in last), last
    assert {line.split()[1] for line in last} == {"spk_0:", "spk_1:"}

    async def sdk_context() -> str:
        redis = streamscribe.connect(stack.url)
        try:
            subscriber = Subscriber(redis, sid, follow=False)
            async for _event in subscriber:
                pass
            return subscriber.context()
        finally:
            await redis.aclose()

    assert asyncio.run(sdk_context()).splitlines() == last
    once = subprocess.run([*cli, "context", sid, *url], capture_output=True, timeout=60)
    assert once.stdout.decode().strip().splitlines() == last
