"""The pipeline as production runs it: redis-server plus one worker process per stage."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import DEFAULT_PIPELINE, ENV_PREFIX
from streamscribe.embedded import RedisServerProcess, free_port


class StackError(RuntimeError):
    """A worker exited or did not become ready."""


@dataclass
class WorkerProcess:
    """One `streamscribe worker STAGE` child with its health port."""

    stage: str
    health_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def ready(self) -> bool:
        return _get(self.health_port, "/readyz") is not None

    def metrics(self) -> dict[str, float]:
        """Every sample of its /metrics, keyed `name{label=value,...}`."""
        text = _get(self.health_port, "/metrics")
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(text or ""):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}"] = float(s.value)
        return samples


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads, and waited-for children)."""
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


class BenchStack:
    """Embedded redis-server and one worker process per stage, each with a health port.

    Workers get production defaults; only the Redis URL, the health endpoint and the
    `extra_env` settings (e.g. STREAMSCRIBE_ASR_COMPUTE_TYPE) are set. Running fewer
    `stages` than the default pipeline needs STREAMSCRIBE_PIPELINE in `extra_env` too,
    or every `done` waits out the done timeout for the stages not running.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        stages: tuple[str, ...] = DEFAULT_PIPELINE,
        extra_env: dict[str, str] | None = None,
        ready_timeout_s: float = 180.0,
    ) -> None:
        self.log_dir = log_dir
        self.stages = stages
        self.extra_env = dict(extra_env or {})
        self.ready_timeout_s = ready_timeout_s
        self.redis: RedisServerProcess | None = None
        self.workers: dict[str, WorkerProcess] = {}
        self._logs: list[IO[bytes]] = []

    @property
    def url(self) -> str:
        if self.redis is None:
            raise StackError("the stack is not started")
        return self.redis.url

    def open(self) -> BenchStack:
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            # AOF on, as `streamscribe up` runs it: its writes are part of the cost.
            self.redis = RedisServerProcess(appendonly=True).start()
            for stage in self.stages:
                self.workers[stage] = self._spawn(stage)
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _spawn(self, stage: str) -> WorkerProcess:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.update(self.extra_env)
        env[f"{ENV_PREFIX}REDIS_URL"] = self.url
        env[f"{ENV_PREFIX}HEALTH_HOST"] = "127.0.0.1"
        env[f"{ENV_PREFIX}HEALTH_PORT"] = str(port)
        log_path = self.log_dir / f"worker-{stage}.log"
        log = log_path.open("wb")
        self._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamscribe.cli", "worker", stage],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group: Ctrl-C reaches the bench only, which then stops them.
            start_new_session=True,
        )
        return WorkerProcess(stage, port, proc, log_path)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        waiting = dict(self.workers)
        while waiting:
            for stage, w in list(waiting.items()):
                if w.proc.poll() is not None:
                    raise StackError(
                        f"{stage} worker exited with {w.proc.returncode}; see {w.log_path}"
                    )
                if w.ready():
                    del waiting[stage]
            if time.monotonic() > deadline:
                raise StackError(f"not ready after {self.ready_timeout_s:.0f}s: {sorted(waiting)}")
            time.sleep(0.25)

    def check_alive(self) -> None:
        for stage, w in self.workers.items():
            if w.proc.poll() is not None:
                raise StackError(f"{stage} worker died ({w.proc.returncode}); see {w.log_path}")

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each worker, redis-server, and this process (`bench`)."""
        out = {stage: cpu_seconds(w.proc.pid) for stage, w in self.workers.items()}
        if self.redis is not None and self.redis.proc is not None:
            out["redis"] = cpu_seconds(self.redis.proc.pid)
        out["bench"] = cpu_seconds(os.getpid())
        return out

    def close(self) -> None:
        """SIGTERM the workers (they drain), SIGKILL what hangs, then stop Redis."""
        for w in self.workers.values():
            if w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGTERM)
        for w in self.workers.values():
            try:
                w.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        if self.redis is not None:
            self.redis.close()
        for log in self._logs:
            log.close()

    def __enter__(self) -> BenchStack:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _get(port: int, path: str) -> str | None:
    """Body of a 200 answer, else None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
            return resp.read().decode() if resp.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None
