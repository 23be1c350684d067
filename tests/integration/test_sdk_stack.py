"""Stack (what `up` and `demo` run): readiness, restarts, kill/start, orderly shutdown.

The workers here run the real worker loop and health endpoint (shared.runner.serve_stage)
with a trivial stage, so no model loads and each test takes a few seconds.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from shared.settings import Settings
from streamscribe.connection import RedisUnreachable
from streamscribe.embedded import free_port
from streamscribe.supervisor import Stack, StackError

TEST_WORKER = """
import asyncio, os, signal, sys
from shared.runner import serve_stage
from shared.settings import Settings

class Handler:
    stage = sys.argv[1]
    async def prepare(self):
        # Stands in for loading a model: not ready before this returns.
        await asyncio.sleep(float(os.environ.get("TEST_PREPARE_S", "0")))
    def summary(self, checkpoint):
        return {}
    async def run_session(self, lease):
        await asyncio.sleep(0)

async def main():
    if os.environ.get("TEST_FAIL") == sys.argv[1]:
        sys.exit(5)
    settings = Settings.from_env()
    # Proves the supervisor's settings arrived: the URL is the stack's, not a default.
    print("worker", sys.argv[1], settings.bus.redis_url, settings.bus.block_ms, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve_stage(Handler(), settings, stop)
    print("drained", sys.argv[1], flush=True)

asyncio.run(main())
"""


@pytest.fixture
def worker_script(tmp_path: Path) -> Path:
    path = tmp_path / "test_worker.py"
    path.write_text(TEST_WORKER)
    return path


class WorkerLog:
    """The workers' combined output: a file the children append to, read by the tests."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("ab")

    def read_text(self) -> str:
        return self.path.read_text()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[WorkerLog]:
    worker_log = WorkerLog(tmp_path / "workers.log")
    yield worker_log
    worker_log.file.close()
    print(worker_log.read_text())  # shown when a test fails


def make_stack(
    worker_script: Path, log: WorkerLog, settings: Settings | None = None, **kw: Any
) -> Stack:
    return Stack(
        settings or Settings(),
        stages=kw.pop("stages", ["alpha", "beta"]),
        command=lambda stage: [sys.executable, str(worker_script), stage],
        output=log.file,
        env={**os.environ, **kw.pop("extra_env", {})},
        **kw,
    )


def wait_until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_embedded_stack_waits_for_ready_and_stops_in_order(
    worker_script: Path, log: WorkerLog
) -> None:
    settings = Settings().with_overrides(bus__block_ms=150)
    stack = make_stack(
        worker_script, log, settings, workers_per_stage=2, extra_env={"TEST_PREPARE_S": "1.0"}
    )
    began = time.monotonic()
    with stack:
        assert time.monotonic() - began >= 1.0  # not ready before prepare() returned
        url = stack.url
        assert stack.embedded and url.startswith("redis://127.0.0.1:")
        procs = stack.processes
        assert {s: len(p) for s, p in procs.items()} == {"alpha": 2, "beta": 2}
        assert all(p.poll() is None for ps in procs.values() for p in ps)
        client = redis_sync.Redis.from_url(url)
        wait_until(
            lambda: {g["name"] for g in client.xinfo_groups("ss:sessions")} >= {b"alpha", b"beta"}
        )
        client.close()
        assert f"worker alpha {url} 150" in log.read_text()
    # Leaving: SIGTERM, every worker drained and exited 0; then Redis went away.
    assert all(p.returncode == 0 for ps in procs.values() for p in ps)
    assert log.read_text().count("drained") == 4
    with pytest.raises(redis_sync.ConnectionError):
        redis_sync.Redis.from_url(url, socket_connect_timeout=1).ping()


def test_a_dead_worker_is_restarted_but_a_killed_one_waits_for_start(
    worker_script: Path, log: WorkerLog, redis_server
) -> None:
    with make_stack(worker_script, log, redis_url=redis_server.url) as stack:
        assert not stack.embedded and stack.url == redis_server.url
        # An unexpected death: restarted by the supervisor, as a new process.
        alpha = stack.processes["alpha"][0]
        os.kill(alpha.pid, signal.SIGKILL)
        wait_until(lambda: stack.processes["alpha"][0].pid != alpha.pid)
        assert stack.processes["alpha"][0].poll() is None

        # kill(): stays down until start().
        beta = stack.processes["beta"][0]
        assert stack.kill("beta") == [beta.pid]
        assert beta.returncode == -signal.SIGKILL
        time.sleep(1.0)
        assert stack.processes["beta"][0] is beta  # not restarted
        (restarted,) = stack.start("beta")
        assert restarted.pid != beta.pid and restarted.poll() is None

        # start() with nothing stopped adds a worker.
        stack.start("beta")
        assert len(stack.processes["beta"]) == 2
        with pytest.raises(ValueError, match="not part of this stack"):
            stack.start("gamma")


def test_a_worker_that_cannot_start_fails_the_stack_fast(
    worker_script: Path, log: WorkerLog
) -> None:
    stack = make_stack(worker_script, log, extra_env={"TEST_FAIL": "beta"}, ready_timeout_s=60)
    began = time.monotonic()
    with pytest.raises(StackError, match=r"beta\[0\] exited with code 5"):
        stack.open()
    assert time.monotonic() - began < 20
    # Everything it had started is stopped again.
    assert all(p.poll() is not None for ps in stack.processes.values() for p in ps)


def test_an_unreachable_redis_url_is_refused(worker_script: Path, log: WorkerLog) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnreachable, match="cannot reach Redis"):
        make_stack(worker_script, log, redis_url=url).open()
