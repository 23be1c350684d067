"""A stage from another distribution plugs in through the entry point alone.

The test writes a toy stage package and its distribution metadata (an
`entry_points.txt` in a `.dist-info` folder, as `pip install` would), puts it on the
workers' PYTHONPATH, and runs it as a real worker process: it claims the session,
follows the events with checkpoints, is SIGKILLed mid-session and taken over, and its
summary lands in `done`. Not a line of `shared/` knows the toy stage.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import stages
from shared.bus import Bus
from shared.consumer import read_events
from shared.schemas import Done, Segment, SegmentEnriched, SegmentFinalized
from shared.settings import Settings

_TOY = '''
"""A toy event-driven stage: one `segment_enriched` per final, counting characters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from shared.event_stage import follow_session
from shared.schemas import EnrichmentPayload, SegmentEnriched, SegmentFinalized
from shared.stages import StageSpec


@dataclass(frozen=True, slots=True)
class ToySettings:
    delay_s: float = 0.0


class _Counter:
    def __init__(self, lease, state, delay_s):
        self.lease = lease
        self.handled = int((state or {}).get("handled", 0))
        self.delay_s = delay_s

    async def on_batch(self, batch):
        out = []
        for followed in batch:
            event = followed.event
            assert isinstance(event, SegmentFinalized)
            await asyncio.sleep(self.delay_s)  # slow enough to be killed mid-session
            self.handled += 1
            payload = EnrichmentPayload(
                segment_id=event.payload.id,
                audio_state={"chars": len(event.payload.text), "nth": self.handled},
            )
            out.append(
                SegmentEnriched(
                    session_id=self.lease.session_id, id="toy:" + event.payload.id,
                    stage="toy", payload=payload,
                )
            )
        return out

    async def finish(self):
        return []

    def state(self):
        return {"handled": self.handled}

    def resume_id(self):
        return None


class ToyHandler:
    stage = "toy"

    def __init__(self, settings):
        self.settings = settings
        self.toy = settings.stage("toy", ToySettings)

    async def prepare(self):
        return None

    async def run_session(self, lease):
        async def make(lease, checkpoint):
            return _Counter(lease, checkpoint.get("state"), self.toy.delay_s)

        await follow_session(
            lease, types={"segment_finalized"}, upstream=("asr",),
            pipeline=self.settings.pipeline, make_processor=make,
            block_ms=self.settings.bus.block_ms, batch_size=1,
        )


def _summary(checkpoint):
    return {"handled": int(((checkpoint or {}).get("state") or {}).get("handled", 0))}


SPEC = StageSpec(
    name="toy", settings_type=ToySettings, make_handler=ToyHandler, upstream=("asr",),
    summary=_summary,
)
'''

FINALS = 12


@pytest.fixture
def toy_dist(tmp_path: Path) -> Iterator[Path]:
    """The toy stage as an installed distribution on sys.path (and the workers')."""
    (tmp_path / "toy_stage.py").write_text(textwrap.dedent(_TOY))
    info = tmp_path / "toy_stage-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-stage\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[streamscribe.stages]\ntoy = toy_stage:SPEC\n")
    sys.path.insert(0, str(tmp_path))
    stages.discover.cache_clear()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("toy_stage", None)
        stages.discover.cache_clear()


def _worker(settings: Settings, toy_dist: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **settings.to_env(),
        "PYTHONPATH": os.pathsep.join([str(toy_dist), os.getcwd()]),
        "STREAMSCRIBE_PIPELINE": "asr,toy",
        "STREAMSCRIBE_TOY_DELAY_S": "0.25",
        "STREAMSCRIBE_LOG_LEVEL": "warning",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "streamscribe.cli", "worker", "toy"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _final(sid: str, n: int) -> SegmentFinalized:
    seg = Segment(id=f"seg-0-{n}", start=n, end=n + 0.5, text="x" * (n + 1), partial=False)
    return SegmentFinalized(session_id=sid, id=seg.id, stage="asr", payload=seg)


async def _enriched(bus: Bus, sid: str) -> list[SegmentEnriched]:
    return [e async for e in read_events(bus.redis, sid) if isinstance(e, SegmentEnriched)]


async def test_a_toy_stage_found_by_entry_point_runs_takes_over_and_joins_done(
    bus: Bus, settings: Settings, toy_dist: Path
) -> None:
    assert "toy" in stages.discover(), "the entry point is what makes the stage known"
    rebuilt = Settings.from_env({"STREAMSCRIBE_TOY_DELAY_S": "0.5"})
    assert rebuilt.stages["toy"].delay_s == 0.5, "its settings come from its own prefix"

    sid = "toy-session"
    await bus.register_session(sid)
    for n in range(FINALS):  # this test plays the upstream asr stage
        await bus.publish(_final(sid, n))
    await bus.mark_finished(sid, "asr")

    first = _worker(settings, toy_dist)
    second: subprocess.Popen[bytes] | None = None
    try:
        async with asyncio.timeout(60):
            while len(await _enriched(bus, sid)) < 3:  # noqa: ASYNC110 - polls Redis
                await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        done_before_takeover = len(await _enriched(bus, sid))
        assert done_before_takeover < FINALS, "killed mid-session"
        second = _worker(settings, toy_dist)
        async with asyncio.timeout(90):
            while not await bus.is_closed(sid):  # noqa: ASYNC110 - polls Redis
                await asyncio.sleep(0.1)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    events = [e async for e in read_events(bus.redis, sid)]
    enriched = [e for e in events if isinstance(e, SegmentEnriched)]
    assert sorted(e.payload.segment_id for e in enriched) == sorted(
        f"seg-0-{n}" for n in range(FINALS)
    ), "every final enriched exactly once across the takeover"
    assert [e.payload.audio_state["nth"] for e in enriched] == list(range(1, FINALS + 1))
    done = events[-1]
    assert isinstance(done, Done), "done is last"
    assert [type(e) for e in events].count(Done) == 1
    assert done.payload.stage_summaries["toy"] == {"handled": FINALS}
    assert done.payload.counts == {"segment_finalized": FINALS, "segment_enriched": FINALS}
    assert set(done.payload.processing_s) == {"asr", "toy"}
    assert done.payload.processing_s["toy"] >= 0.25 * (FINALS - done_before_takeover)
    assert done.payload.unfinished == []
