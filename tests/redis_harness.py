"""Real Redis for tests: testcontainers when a Docker engine answers, else a redis-server binary."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Protocol

from streamscribe.embedded import RedisServerProcess, free_port


class RealRedis(Protocol):
    url: str

    def restart(self, *, kill: bool = False) -> None: ...
    def stop(self, *, kill: bool = False) -> None: ...
    def start(self) -> object: ...


@functools.cache
def docker_engine_answers() -> bool:
    """Asked once per test run; a Docker client without an engine answers False fast."""
    if os.environ.get("STREAMSCRIBE_TEST_NO_DOCKER"):
        return False
    if not os.environ.get("DOCKER_HOST") and not os.path.exists("/var/run/docker.sock"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


class ContainerRedis:
    """redis:7 in a container, bound to a fixed host port so a restart keeps the URL."""

    def __init__(self) -> None:
        from testcontainers.redis import RedisContainer

        self.port = free_port()
        self.container = RedisContainer("redis:7-alpine").with_bind_ports(6379, self.port)
        self.container.with_command("redis-server --appendonly yes --save ''")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ContainerRedis:
        self.container.start()
        return self

    def stop(self, *, kill: bool = False) -> None:
        wrapped = self.container.get_wrapped_container()
        wrapped.kill() if kill else wrapped.stop()

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.container.get_wrapped_container().start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.container.stop()


@contextlib.contextmanager
def real_redis() -> Iterator[RealRedis]:
    server: ContainerRedis | RedisServerProcess
    server = ContainerRedis() if docker_engine_answers() else RedisServerProcess(appendonly=True)
    server.start()
    try:
        yield server
    finally:
        server.close()
