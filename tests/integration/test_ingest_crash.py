"""A SIGKILLed ingest worker process: its successor continues the audio log exactly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from shared.bus import Bus
from shared.schemas import SessionConfig, VadMark
from shared.settings import Settings
from tests.support.ingest import (
    STOP,
    audio_log,
    end_marks,
    ingest_settings,
    load_fixture,
    media_fields,
    pcm_frames,
    push,
    running_worker,
    start_fields,
    track_audio,
    wait_done,
)

_RUN_INGEST = (
    "from shared.runner import run_stage; from shared.settings import Settings; "
    "run_stage('ingest', Settings.from_env())"
)


def _spawn_worker(settings: Settings, name: str) -> subprocess.Popen[bytes]:
    bus = settings.bus
    env = {
        **os.environ,
        "STREAMSCRIBE_REDIS_URL": bus.redis_url,
        "STREAMSCRIBE_BLOCK_MS": str(bus.block_ms),
        "STREAMSCRIBE_CLAIM_MIN_IDLE_MS": str(bus.claim_min_idle_ms),
        "STREAMSCRIBE_RENEW_INTERVAL_MS": str(bus.renew_interval_ms),
        "STREAMSCRIBE_PIPELINE": ",".join(settings.pipeline),
        "STREAMSCRIBE_WORKER_NAME": name,
    }
    return subprocess.Popen(
        [sys.executable, "-c", _RUN_INGEST],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _commits(bus: Bus, sid: str) -> int:
    return int((await bus.load_checkpoint(sid, "ingest") or {}).get("commit", 0))


@pytest.mark.chaos
async def test_sigkilled_ingest_resumes_exactly_where_the_log_ends(
    bus: Bus, settings: Settings
) -> None:
    settings = ingest_settings(settings)
    audio, _ = load_fixture("conv_short")
    audio = audio[: 16000 * 8]
    frames = pcm_frames(audio, "pcm_s16le", 320)
    sid = "crash"

    async def produce() -> None:
        await push(bus.redis, sid, [start_fields(SessionConfig())], register=True)
        for seq, frame in enumerate(frames, start=1):
            await push(bus.redis, sid, [media_fields(seq, frame)])
            await asyncio.sleep(0.004)
        await push(bus.redis, sid, [STOP])

    victim = _spawn_worker(settings, "victim")
    producer = asyncio.create_task(produce())
    try:
        deadline = time.monotonic() + 30
        while await _commits(bus, sid) < 20:
            assert time.monotonic() < deadline, "the victim worker never committed"
            assert victim.poll() is None, "the victim worker exited"
            await asyncio.sleep(0.01)
        victim.kill()  # SIGKILL: no drain, the lease just goes idle
        victim.wait(timeout=10)
        killed_at = await _commits(bus, sid)
        async with running_worker(bus, settings.with_overrides(worker_name="heir")):
            await producer
            await wait_done(bus.redis, sid, timeout_s=30)
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        if victim.poll() is None:
            victim.kill()
            victim.wait(timeout=10)

    assert killed_at < await _commits(bus, sid), "the heir did part of the work"
    entries = await audio_log(bus.redis, sid)
    np.testing.assert_allclose(track_audio(entries, 0), audio[:, 0], atol=1 / 32768)
    assert len(end_marks(entries)) == 1
    positions = [e.pos for e in entries if isinstance(e, VadMark)]
    assert positions == sorted(positions)
