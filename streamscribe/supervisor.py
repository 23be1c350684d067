"""Run pipeline stages as supervised worker processes: the engine of `up`, `demo` and tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import structlog

from shared.settings import ENV_PREFIX, Settings
from streamscribe.connection import check_reachable_sync
from streamscribe.embedded import RedisServerProcess, free_port

log = structlog.get_logger("streamscribe.supervisor")

WorkerCommand = Callable[[str], Sequence[str]]

# A worker that dies sooner than this after starting is crash-looping: back off.
_QUICK_EXIT_S = 10.0
_MAX_BACKOFF_S = 15.0
_POLL_S = 0.25


# Not a stage: the gateway process (`streamscribe gateway`), supervised like one. It also
# serves its /readyz on the health port the supervisor gives it; one per stack.
GATEWAY = "gateway"


def worker_command(stage: str) -> list[str]:
    """`python -m streamscribe.cli worker STAGE` (or `gateway`) with this interpreter."""
    if stage == GATEWAY:
        return [sys.executable, "-m", "streamscribe.cli", GATEWAY]
    return [sys.executable, "-m", "streamscribe.cli", "worker", stage]


class StackError(RuntimeError):
    """A worker could not be started or did not become ready."""


@dataclass
class _Worker:
    stage: str
    index: int
    proc: subprocess.Popen[bytes] | None = None
    health_port: int = 0
    started_at: float = 0.0
    held_down: bool = False  # stopped on purpose by kill(); not restarted until start()
    quick_exits: int = 0
    restart_at: float | None = None
    restarts: int = 0

    @property
    def name(self) -> str:
        return f"{self.stage}[{self.index}]"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Stack:
    """Redis (embedded unless `redis_url` is given) plus worker processes per stage.

    Use as a context manager: entering starts everything and returns once every worker
    answers 200 on its /readyz (model loaded, Redis reachable); leaving sends SIGTERM
    (workers drain and release their sessions), then stops the embedded Redis. A worker
    that dies is restarted, with back-off if it keeps dying, unless `kill()` stopped it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        stages: Iterable[str] | None = None,
        workers_per_stage: int = 1,
        redis_url: str | None = None,
        ready_timeout_s: float = 300.0,
        drain_timeout_s: float = 30.0,
        restart: bool = True,
        output: int | IO[Any] | None = None,
        command: WorkerCommand = worker_command,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.stages = list(stages) if stages is not None else list(settings.pipeline)
        if not self.stages:
            raise ValueError("no stages to run")
        if workers_per_stage < 1:
            raise ValueError("workers_per_stage must be at least 1")
        self.workers_per_stage = workers_per_stage
        self._settings = settings
        self._redis_url = redis_url
        self.ready_timeout_s = ready_timeout_s
        self.drain_timeout_s = drain_timeout_s
        self.restart = restart
        self._output = output
        self._command = command
        # The children inherit this process's environment (PATH, HOME, ...); every
        # streamscribe setting in it is then overwritten from `settings`.
        self._base_env = dict(os.environ if env is None else env)
        self._redis: RedisServerProcess | None = None
        self._workers: list[_Worker] = []
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._monitor: threading.Thread | None = None

    # --- public surface ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The Redis URL every worker uses."""
        if self._redis is not None:
            return self._redis.url
        if self._redis_url is None:
            raise StackError("the stack is not started")
        return self._redis_url

    @property
    def embedded(self) -> bool:
        return self._redis is not None

    @property
    def redis_process(self) -> RedisServerProcess | None:
        """The embedded redis-server (for chaos tests that kill and restart it)."""
        return self._redis

    @property
    def settings(self) -> Settings:
        """The settings the workers run with (Redis URL included)."""
        return self._settings.with_overrides(bus__redis_url=self.url)

    @property
    def processes(self) -> dict[str, list[subprocess.Popen[bytes]]]:
        """Current worker processes per stage (a restarted worker is a new process)."""
        with self._lock:
            out: dict[str, list[subprocess.Popen[bytes]]] = {s: [] for s in self.stages}
            for w in self._workers:
                if w.proc is not None:
                    out.setdefault(w.stage, []).append(w.proc)
            return out

    def health_urls(self, stage: str) -> list[str]:
        """Base URLs (/livez, /readyz, /metrics) of the stage's running workers."""
        with self._lock:
            return [
                f"http://127.0.0.1:{w.health_port}"
                for w in self._workers
                if w.stage == stage and w.alive()
            ]

    def open(self) -> Stack:
        """Start Redis (if embedded) and every worker; return when all are ready."""
        try:
            if self._redis_url is None:
                self._redis = RedisServerProcess(appendonly=True).start()
                log.info("redis_started", url=self._redis.url, data_dir=str(self._redis.data_dir))
            else:
                check_reachable_sync(self._redis_url)
            with self._lock:
                for stage in self.stages:
                    for index in range(1 if stage == GATEWAY else self.workers_per_stage):
                        worker = _Worker(stage, index)
                        self._workers.append(worker)
                        self._spawn(worker)
            self._wait_ready(self._workers)
        except BaseException:
            self.close()
            raise
        self._monitor = threading.Thread(target=self._watch, name="stack-monitor", daemon=True)
        self._monitor.start()
        return self

    def kill(self, stage: str, *, index: int | None = None, sig: int = signal.SIGKILL) -> list[int]:
        """Signal a stage's workers (all, or `index`) and wait until they exit.

        They stay down until `start(stage)`. Returns the pids signalled.
        """
        with self._lock:
            targets = [w for w in self._select(stage, index) if w.alive()]
            for w in targets:
                w.held_down = True
                assert w.proc is not None
                w.proc.send_signal(sig)
                log.info("worker_signalled", worker=w.name, pid=w.proc.pid, signal=int(sig))
        for w in targets:
            assert w.proc is not None
            _wait_or_kill(w.proc, self.drain_timeout_s)
        return [w.proc.pid for w in targets if w.proc is not None]

    def start(self, stage: str, *, wait: bool = True) -> list[subprocess.Popen[bytes]]:
        """Start the stage's stopped workers; if none is stopped, add one more worker.

        With `wait`, returns once the started workers are ready.
        """
        if stage not in self.stages:
            raise ValueError(
                f"stage {stage!r} is not part of this stack ({', '.join(self.stages)})"
            )
        with self._lock:
            started = [w for w in self._select(stage, None) if not w.alive()]
            if not started:
                index = max((w.index for w in self._workers if w.stage == stage), default=-1) + 1
                started = [_Worker(stage, index)]
                self._workers.extend(started)
            for w in started:
                w.held_down = False
                w.quick_exits = 0
                self._spawn(w)
        if wait:
            self._wait_ready(started)
        return [w.proc for w in started if w.proc is not None]

    def close(self) -> None:
        """SIGTERM every worker (they drain), SIGKILL stragglers, then stop Redis."""
        self._closing.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        with self._lock:
            live = [w for w in self._workers if w.alive()]
            for w in live:
                assert w.proc is not None
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGTERM)
        for w in live:
            assert w.proc is not None
            _wait_or_kill(w.proc, self.drain_timeout_s)
        if self._redis is not None:
            self._redis.close()
            log.info("redis_stopped")

    def __enter__(self) -> Stack:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals --------------------------------------------------------------------------

    def _select(self, stage: str, index: int | None) -> list[_Worker]:
        chosen = [w for w in self._workers if w.stage == stage and index in (None, w.index)]
        if not chosen:
            raise ValueError(f"no worker {stage}[{'*' if index is None else index}] in this stack")
        return chosen

    def _spawn(self, worker: _Worker) -> None:
        worker.health_port = free_port()
        env = {**self._base_env, **self.settings.to_env()}
        env[f"{ENV_PREFIX}HEALTH_HOST"] = "127.0.0.1"
        env[f"{ENV_PREFIX}HEALTH_PORT"] = str(worker.health_port)
        # Each process names itself (host-pid): two workers sharing a consumer name
        # would renew each other's leases.
        env.pop(f"{ENV_PREFIX}WORKER_NAME", None)
        if self._output is None:
            stdout: int | IO[Any] = 2  # our stderr: stdout stays free for the CLI's output
            stderr: int | IO[Any] | None = None
        else:
            stdout, stderr = self._output, subprocess.STDOUT
        worker.proc = subprocess.Popen(
            list(self._command(worker.stage)),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            # Own process group: a terminal's Ctrl-C reaches the supervisor only, which
            # then stops workers in order instead of racing their restarts.
            start_new_session=True,
        )
        worker.started_at = time.monotonic()
        worker.restart_at = None
        log.info("worker_started", worker=worker.name, pid=worker.proc.pid, port=worker.health_port)

    def _wait_ready(self, workers: list[_Worker]) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        waiting = {id(w): (w, w.proc) for w in workers}
        while waiting:
            for key, (w, proc) in list(waiting.items()):
                assert proc is not None
                if proc.poll() is not None:
                    raise StackError(
                        f"worker {w.name} exited with code {proc.returncode} before it was ready"
                        " (its log is above)"
                    )
                if _ready(w.health_port):
                    log.info("worker_ready", worker=w.name, pid=proc.pid)
                    del waiting[key]
            if not waiting:
                return
            if time.monotonic() > deadline:
                names = ", ".join(w.name for w, _ in waiting.values())
                raise StackError(f"workers not ready after {self.ready_timeout_s:.0f}s: {names}")
            time.sleep(_POLL_S)

    def _watch(self) -> None:
        while not self._closing.wait(_POLL_S):
            with self._lock:
                for w in self._workers:
                    if not self._closing.is_set():
                        self._check(w)

    def _check(self, w: _Worker) -> None:
        now = time.monotonic()
        if w.held_down or w.proc is None:
            return
        if w.proc.poll() is None:
            if w.quick_exits and now - w.started_at > _QUICK_EXIT_S:
                w.quick_exits = 0
            return
        if not self.restart:
            return
        if w.restart_at is None:
            quick = now - w.started_at < _QUICK_EXIT_S
            w.quick_exits = w.quick_exits + 1 if quick else 0
            delay = min(_MAX_BACKOFF_S, 0.5 * 2**w.quick_exits) if quick else 0.0
            w.restart_at = now + delay
            log.warning(
                "worker_died",
                worker=w.name,
                pid=w.proc.pid,
                returncode=w.proc.returncode,
                restart_in_s=delay,
            )
        if now >= w.restart_at:
            w.restarts += 1
            self._spawn(w)
            log.info("worker_restarted", worker=w.name, restarts=w.restarts)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _wait_or_kill(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("worker_kill", pid=proc.pid, reason=f"no exit {timeout_s:.0f}s after SIGTERM")
        proc.kill()
        proc.wait()
