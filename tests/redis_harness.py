"""Real Redis for tests: testcontainers when a Docker engine answers, else a redis-server binary."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterator
from typing import Any, Protocol

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


CLUSTER_SLOTS = 16384


class RedisClusterProcesses:
    """A Redis Cluster of `size` primaries (redis-server processes with AOF, no replicas).

    Slots are split evenly with CLUSTER ADDSLOTSRANGE and the nodes introduced with
    CLUSTER MEET, so no redis-cli is needed. `url` names the first node with the
    `redis+cluster://` scheme; the client discovers the others.
    """

    def __init__(self, size: int = 3) -> None:
        # The cluster bus port is named too: the default, port + 10000, is out of range
        # for a port above 55535.
        self.bus_ports = [free_port() for _ in range(size)]
        self.nodes = [
            RedisServerProcess(appendonly=True, extra_args=_cluster_args(bus_port))
            for bus_port in self.bus_ports
        ]
        # Slots moved by `migrate_slot`: slot -> index of the node that now serves it.
        self.moved: dict[int, int] = {}

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self, timeout_s: float = 20.0) -> RedisClusterProcesses:
        import redis

        for node in self.nodes:
            node.start()
        clients = [redis.Redis(port=node.port) for node in self.nodes]
        try:
            share = CLUSTER_SLOTS // len(self.nodes)
            for i, client in enumerate(clients):
                last = CLUSTER_SLOTS - 1 if i == len(clients) - 1 else (i + 1) * share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", i * share, last)
            for node, bus_port in zip(self.nodes[1:], self.bus_ports[1:], strict=True):
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port, bus_port)
            deadline = time.monotonic() + timeout_s
            while not all(_cluster_ok(c, len(self.nodes)) for c in clients):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the cluster did not converge in {timeout_s}s")
                time.sleep(0.1)
        finally:
            for client in clients:
                client.close()
        return self

    def node_of(self, key: str) -> RedisServerProcess:
        """The node serving `key`'s slot (split evenly in `start`, unless moved since)."""
        return self.nodes[self.index_of(slot_of(key))]

    def index_of(self, slot: int) -> int:
        share = CLUSTER_SLOTS // len(self.nodes)
        return self.moved.get(slot, min(slot // share, len(self.nodes) - 1))

    def migrate_slot(self, slot: int, target: int, *, pause_s: float = 0.0) -> int:
        """Reshard `slot` to node `target` as `redis-cli --cluster reshard` does, one key
        per MIGRATE with `pause_s` between keys, so the slot stays half-moved that long.

        The source serves the slot's keys it still holds and redirects the others (ASK);
        a command over keys on both sides gets TRYAGAIN until the move ends. Returns the
        number of keys moved.
        """
        import redis

        source = self.index_of(slot)
        clients = [redis.Redis(port=node.port) for node in self.nodes]
        try:
            src, dst = clients[source], clients[target]
            src_id, dst_id = (c.execute_command("CLUSTER MYID") for c in (src, dst))
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
            port = self.nodes[target].port
            moved = 0
            while names := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 1):
                src.execute_command("MIGRATE", "127.0.0.1", port, "", 0, 5000, "KEYS", *names)
                moved += len(names)
                time.sleep(pause_s)
            # The target first, so the slot is never served by no node.
            others = [i for i in range(len(clients)) if i not in (source, target)]
            for i in (target, source, *others):
                clients[i].execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
        finally:
            for client in clients:
                client.close()
        self.moved[slot] = target
        return moved

    def close(self) -> None:
        for node in self.nodes:
            node.close()


def slot_of(key: str) -> int:
    from redis.crc import key_slot

    return int(key_slot(key.encode()))


def _cluster_args(bus_port: int) -> list[str]:
    return [
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-port", str(bus_port),
    ]  # fmt: skip


def _cluster_ok(client: Any, size: int) -> bool:
    info = client.execute_command("CLUSTER INFO")  # redis-py parses it into a dict
    return bool(info["cluster_state"] == "ok" and info["cluster_known_nodes"] == str(size))


@contextlib.contextmanager
def real_redis_cluster(size: int = 3) -> Iterator[RedisClusterProcesses]:
    cluster = RedisClusterProcesses(size)
    try:
        yield cluster.start()
    finally:
        cluster.close()
