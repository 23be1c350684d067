"""The pipeline on a three-node Redis Cluster: workers, producer, consumer and CLI alike.

Every key of a session carries the session's hash tag, so a session lives on one node
while the registry may live on another; the tests pick session ids for which it does.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared import keys
from shared.schemas import Error, SegmentFinalized
from streamscribe.embedded import RedisServerProcess
from streamscribe.supervisor import Stack
from tests.redis_harness import RedisClusterProcesses, real_redis_cluster, slot_of
from tests.support.pipeline import (
    allowed_gap,
    assert_consistent,
    collect,
    finals_published,
    kill_owner_mid_session,
    offline_text,
    push,
    reference_text,
    running_stack,
    sync_client,
    transcript_text,
    wait_until,
    wer,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterProcesses]:
    with real_redis_cluster(3) as running:
        yield running


@pytest.fixture(scope="module")
def worker_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cluster") / "workers.log"


@pytest.fixture(scope="module")
def stack(cluster: RedisClusterProcesses, worker_log: Path) -> Iterator[Stack]:
    with running_stack(worker_log, redis_url=cluster.url) as running:
        yield running


def _session_ids_off_the_registry_node(url: str, count: int) -> list[str]:
    client = sync_client(url)
    try:
        registry_node = client.get_node_from_key(keys.registry())
        ids = [
            sid
            for sid in (f"cluster-{n}" for n in range(200))
            if client.get_node_from_key(keys.events(sid)) != registry_node
        ]
    finally:
        client.close()
    return ids[:count]


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamscribe.cli", *args, "--redis-url", url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _check_transcript(events: list) -> None:
    assert_consistent(events)
    # An outage is waited out, not reported: no stage gave up on the session.
    assert not [e for e in events if isinstance(e, Error)], "no error events"
    finals = [e for e in events if isinstance(e, SegmentFinalized)]
    assert len(finals) == 6, "six utterances, each finalized once"
    ref = reference_text("conv_short")
    streaming = wer(ref, transcript_text(events))
    assert streaming <= wer(ref, offline_text("conv_short")) + allowed_gap(ref), streaming


def test_a_session_runs_end_to_end_on_a_cluster(stack: Stack) -> None:
    assert stack.url.startswith("redis+cluster://")
    (sid,) = _session_ids_off_the_registry_node(stack.url, 1)

    async def run() -> list:
        await push(stack.url, "conv_short", speed=2.0, session_id=sid)
        return await collect(stack.url, sid)

    events = asyncio.run(run())
    _check_transcript(events)
    cli = _cli(stack.url, "transcript", sid)
    assert cli.returncode == 0, cli.stderr
    finals = [e.payload.text for e in events if isinstance(e, SegmentFinalized)]
    assert [s["text"] for s in json.loads(cli.stdout)["segments"]] == finals
    status = _cli(stack.url, "status")
    assert status.returncode == 0, status.stderr


def test_a_sigkilled_asr_worker_is_taken_over_on_a_cluster(stack: Stack) -> None:
    stack.start("asr")  # a second asr worker, standing by
    sid = _session_ids_off_the_registry_node(stack.url, 2)[1]

    async def scenario() -> list:
        pushing = asyncio.create_task(push(stack.url, "conv_short", speed=1.5, session_id=sid))
        await asyncio.to_thread(kill_owner_mid_session, stack.url, "asr", sid)
        await pushing
        return await collect(stack.url, sid)

    _check_transcript(asyncio.run(scenario()))


@pytest.mark.parametrize("holding", ["session", "registry"])
def test_a_node_killed_and_restarted_mid_session(
    cluster: RedisClusterProcesses, stack: Stack, holding: str
) -> None:
    """SIGKILL the node that holds the session's keys (or the registry), and 2 s later
    start it again with its AOF: workers wait out the outage and the session completes."""
    sid = _session_ids_off_the_registry_node(stack.url, 4)[2 if holding == "session" else 3]
    node = cluster.node_of(keys.events(sid) if holding == "session" else keys.registry())

    async def scenario() -> list:
        await push(stack.url, "conv_short", speed=None, session_id=sid)  # all audio accepted first
        await asyncio.to_thread(wait_until, lambda: finals_published(stack.url, sid) >= 1, 60)
        node.stop(kill=True)
        await asyncio.sleep(2.0)  # long enough for workers to hit the outage
        node.start()
        return await collect(stack.url, sid)

    _check_transcript(asyncio.run(scenario()))


def _redirections(node: RedisServerProcess) -> int:
    """How many ASK and TRYAGAIN replies `node` has sent (INFO errorstats)."""
    client = redis.Redis(port=node.port)
    try:
        stats = client.info("errorstats")
    finally:
        client.close()
    counts = (stats.get(f"errorstat_{code}", {}).get("count", 0) for code in ("ASK", "TRYAGAIN"))
    return sum(int(count) for count in counts)


def test_a_session_survives_its_slot_being_resharded_mid_session(
    cluster: RedisClusterProcesses, stack: Stack, worker_log: Path
) -> None:
    """Move the session's slot to another node key by key while audio still arrives:
    for seconds some of its keys are on each node (ASK redirects, TRYAGAIN on scripts
    that span both), and the session completes, consistent and error-free, with no
    stage failing on the way (a redirect that outlasts redis-py's retries is waited out)."""
    sid = _session_ids_off_the_registry_node(stack.url, 5)[4]
    slot = slot_of(keys.events(sid))
    source = cluster.node_of(keys.events(sid))
    target = next(i for i in range(len(cluster.nodes)) if i != cluster.index_of(slot))
    redirections = _redirections(source)
    log_start = worker_log.stat().st_size

    async def scenario() -> tuple[list, int]:
        pushing = asyncio.create_task(push(stack.url, "conv_short", speed=1.5, session_id=sid))
        await asyncio.to_thread(wait_until, lambda: finals_published(stack.url, sid) >= 1, 60)
        moved = await asyncio.to_thread(cluster.migrate_slot, slot, target, pause_s=0.5)
        await pushing
        return await collect(stack.url, sid), moved

    events, moved = asyncio.run(scenario())
    assert moved >= 3, "the session's streams moved one by one"
    assert cluster.node_of(keys.events(sid)) is cluster.nodes[target]
    assert _redirections(source) > redirections, "workers met the half-moved slot"
    _check_transcript(events)
    with worker_log.open("rb") as log:
        log.seek(log_start)
        assert b'"session_failed"' not in log.read()


def test_an_unreachable_cluster_is_a_clear_error() -> None:
    from streamscribe.embedded import free_port

    url = f"redis+cluster://127.0.0.1:{free_port()}"
    result = _cli(url, "transcript", "any-session")
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(f"cannot reach Redis at {url}"), result.stderr
