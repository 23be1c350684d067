"""`pip install streamscribe` (no extras) is a client: the SDK and CLI without the models.

Builds the project into a fresh virtualenv, as a user would, and checks that the SDK
imports no model runtime and that the client commands work against a real Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.bus import Bus
from shared.schemas import Done, DonePayload, Segment, SegmentFinalized
from shared.settings import Settings

ROOT = Path(__file__).parents[2]
MODEL_RUNTIMES = ("torch", "faster_whisper", "ctranslate2", "onnxruntime", "transformers")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client")
    # A copy of the sources, so the build's in-tree `build/` does not land in the checkout.
    source = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("shared", "services", "streamscribe"):
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**os.environ, "PIP_CONSTRAINT": str(ROOT / "constraints.txt")}
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv


def test_the_sdk_imports_no_model_runtime(client_venv: Path) -> None:
    code = (
        "import sys, streamscribe, streamscribe.cli, streamscribe.client, "
        "streamscribe.producer; "
        f"print(sorted(set({MODEL_RUNTIMES!r}) & set(sys.modules)))"
    )
    out = subprocess.run(
        [str(client_venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "[]"
    listed = subprocess.run(
        [str(client_venv / "bin" / "pip"), "list", "--format=json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    names = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    assert not names & {"torch", "faster-whisper", "ctranslate2", "onnxruntime"}, names


def test_client_commands_work_against_a_running_bus(client_venv: Path, settings: Settings) -> None:
    sid = "client-only"

    async def publish() -> None:
        from shared.bus import connect

        client = connect(settings.bus)
        bus = Bus(client, settings.bus)
        seg = Segment(id="seg-0-0", start=0.0, end=1.0, text="hello there", partial=False)
        await bus.publish(SegmentFinalized(session_id=sid, id=seg.id, payload=seg))
        await bus.publish(Done(session_id=sid, id="done", payload=DonePayload(segments=1)))
        await client.aclose()

    asyncio.run(publish())
    cli = [str(client_venv / "bin" / "streamscribe")]
    url = ["--redis-url", settings.bus.redis_url]
    events = subprocess.run(
        [*cli, "events", sid, "--follow", *url], capture_output=True, text=True, timeout=60
    )
    assert events.returncode == 0, events.stderr
    assert [json.loads(line)["type"] for line in events.stdout.splitlines()] == [
        "segment_finalized",
        "done",
    ]
    transcript = subprocess.run(
        [*cli, "transcript", sid, *url], capture_output=True, text=True, timeout=60
    )
    assert transcript.returncode == 0, transcript.stderr
    assert json.loads(transcript.stdout)["text"] == "hello there"
    pushed = subprocess.run(
        [*cli, "push", str(ROOT / "tests" / "fixtures" / "noise.flac"), "--fast", *url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pushed.returncode == 0, pushed.stderr
    worker = subprocess.run(
        [*cli, "worker", "asr", *url], capture_output=True, text=True, timeout=120
    )
    assert worker.returncode != 0
    assert "streamscribe[asr]" in worker.stderr, worker.stderr[-2000:]
