"""`streamscribe up` and `demo` as a user runs them: real processes, embedded Redis, real ingest.

Only the ingest stage runs (STREAMSCRIBE_PIPELINE=ingest makes it the last stage, so it
publishes `done`); the asr model is exercised by the end-to-end tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
import redis as redis_sync

from shared.schemas import Transcript
from streamscribe.client import wait_for_done

FIXTURES = Path(__file__).parents[1] / "fixtures"


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSCRIBE_")}
    env["STREAMSCRIBE_PIPELINE"] = "ingest"
    return env


def cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "streamscribe.cli", *argv]


@pytest.fixture
def up(tmp_path: Path):
    err = (tmp_path / "up.err").open("wb")
    proc = subprocess.Popen(
        cli("up", "--stages", "ingest"),
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=err,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        err.close()
        print((tmp_path / "up.err").read_text())


def test_up_starts_embedded_redis_and_workers_then_stops_on_sigterm(up, tmp_path: Path) -> None:
    assert up.stdout is not None
    first = up.stdout.readline().decode()  # printed once every worker is ready
    assert first.startswith("redis: redis://127.0.0.1:")
    url = first.split(" ", 1)[1].strip()

    pushed = subprocess.run(
        cli("push", str(FIXTURES / "noise.flac"), "--fast", "--redis-url", url),
        env=cli_env(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    sid = pushed.stdout.decode().splitlines()[0]
    transcript = wait_for_done(url, sid, timeout_s=30)
    assert transcript.meta.complete
    assert transcript.meta.duration_s == pytest.approx(4.0, abs=0.1)

    up.send_signal(signal.SIGTERM)
    assert up.wait(timeout=30) == 0
    err = (tmp_path / "up.err").read_text()
    assert "worker_stopped" in err and "redis_stopped" in err
    with pytest.raises(redis_sync.ConnectionError):
        redis_sync.Redis.from_url(url, socket_connect_timeout=1).ping()


def test_demo_pushes_a_file_and_writes_the_transcript(tmp_path: Path) -> None:
    began = time.monotonic()
    result = subprocess.run(
        cli("demo", str(FIXTURES / "noise.flac"), "--fast", "--stages", "ingest"),
        env=cli_env(),
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    lines = result.stdout.decode().splitlines()
    target = tmp_path / "transcript.json"
    assert lines[-1] == f"transcript: {target}"
    assert any(line.startswith("progress: pushed") for line in lines)  # stdout is no TTY
    assert "\x1b" not in result.stdout.decode()
    transcript = msgspec.json.decode(target.read_bytes(), type=Transcript)
    assert transcript.meta.complete and transcript.meta.duration_s == pytest.approx(4.0, abs=0.1)
    assert json.loads(target.read_text())["schema_version"] == 2
    assert time.monotonic() - began < 60


def test_up_started_as_a_background_job_stops_on_sigint(tmp_path: Path) -> None:
    """Shells start `streamscribe up &` with SIGINT ignored; `kill -INT` must still stop it."""

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    with (tmp_path / "up.err").open("wb") as err:
        proc = subprocess.Popen(
            cli("up", "--stages", "ingest"),
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=err,
            preexec_fn=ignore_sigint,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().decode().startswith("redis: redis://")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    assert "redis_stopped" in (tmp_path / "up.err").read_text()
