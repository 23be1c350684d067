"""CLI commands against real Redis via `main([...])`: push, events, transcript, status."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import msgspec
import pytest
import redis as redis_sync

from shared import keys
from shared.bus import Bus, connect
from shared.schemas import Done, DonePayload, Event, PartialSegment, Segment, SegmentFinalized
from shared.schemas import Transcript as TranscriptStruct
from shared.settings import Settings
from streamscribe.cli import EXIT_TIMEOUT, EXIT_USAGE, main

FIXTURES = Path(__file__).parents[1] / "fixtures"
SID = "cli-1"


def events(sid: str = SID) -> list[Event]:
    def seg(text: str, revision: int, final: bool) -> Segment:
        return Segment(
            id="seg-0", start=0.5, end=1.5, text=text, partial=not final, revision=revision
        )

    return [
        PartialSegment(session_id=sid, id="seg-0", revision=1, payload=seg("good", 1, False)),
        PartialSegment(session_id=sid, id="seg-0", revision=2, payload=seg("good morn", 2, False)),
        SegmentFinalized(
            session_id=sid, id="seg-0", revision=3, payload=seg("good morning", 3, True)
        ),
        Done(session_id=sid, id="done", payload=DonePayload(duration_s=1.5, segments=1)),
    ]


def publish(settings: Settings, evs: list[Event]) -> None:
    async def run() -> None:
        client = connect(settings.bus)
        bus = Bus(client, settings.bus)
        for event in evs:
            assert (await bus.publish(event)).published
        await client.aclose()

    asyncio.run(run())


@pytest.fixture
def sync_redis(settings: Settings):
    client = redis_sync.Redis.from_url(settings.bus.redis_url)
    yield client
    client.close()


def run_cli(settings: Settings, *argv: str) -> int:
    return main([*argv, "--redis-url", settings.bus.redis_url])


def test_events_prints_the_stored_json_lines(settings: Settings, sync_redis, capsys) -> None:
    publish(settings, events())
    assert run_cli(settings, "events", SID) == 0
    stored = [f[b"data"].decode() for _id, f in sync_redis.xrange(keys.events(SID))]
    assert capsys.readouterr().out.splitlines() == stored
    assert [json.loads(line)["seq"] for line in stored] == [1, 2, 3, 4]

    assert run_cli(settings, "events", SID, "--from-seq", "3") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == stored[2:]
    assert [json.loads(line)["type"] for line in lines] == ["segment_finalized", "done"]


def test_events_follow_ends_at_done(settings: Settings, capsys) -> None:
    publish(settings, events()[:2])

    async def follow_while_publishing() -> int:
        follower = asyncio.create_task(
            asyncio.to_thread(run_cli, settings, "events", SID, "--follow", "--from-seq", "2")
        )
        await asyncio.sleep(0.5)
        assert not follower.done()
        await asyncio.to_thread(publish, settings, events()[2:])
        return await asyncio.wait_for(follower, timeout=10)

    assert asyncio.run(follow_while_publishing()) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [2, 3, 4]


def test_unknown_session_exits_2(settings: Settings, capsys) -> None:
    for command in ("events", "transcript"):
        assert run_cli(settings, command, "nobody") == EXIT_USAGE
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.strip() == (
            f"streamscribe: unknown session 'nobody' at {settings.bus.redis_url}"
        )
    assert run_cli(settings, "events", "bad{id}") == EXIT_USAGE
    assert "session id" in capsys.readouterr().err


def test_following_an_unknown_session_waits_for_it_then_gives_up(
    settings: Settings, capsys
) -> None:
    started = time.monotonic()
    assert run_cli(settings, "events", "later", "--follow", "--session-wait", "1") == EXIT_USAGE
    assert time.monotonic() - started >= 1.0
    err = capsys.readouterr().err
    assert "unknown session 'later'" in err and "(waited 1 s)" in err


def test_following_a_session_created_meanwhile_prints_it(settings: Settings, capsys) -> None:
    async def create_later() -> None:
        await asyncio.sleep(0.8)
        await asyncio.to_thread(publish, settings, events("late"))

    async def follow() -> int:
        creator = asyncio.create_task(create_later())
        code = await asyncio.to_thread(run_cli, settings, "events", "late", "--follow")
        await creator
        return code

    assert asyncio.run(follow()) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["type"] for line in lines][-1] == "done"
    assert len(lines) == len(events("late"))


def test_transcript_to_stdout_and_to_a_file(settings: Settings, tmp_path: Path, capsys) -> None:
    publish(settings, events()[:2])
    assert run_cli(settings, "transcript", SID) == 0
    out = capsys.readouterr().out
    assert out.startswith('{\n  "schema_version": 2,')  # indented
    partial = msgspec.json.decode(out, type=TranscriptStruct)
    assert partial.text == "" and partial.segments[0].text == "good morn"
    assert partial.segments[0].partial and not partial.meta.complete

    publish(settings, events()[2:])
    target = tmp_path / "t.json"
    assert run_cli(settings, "transcript", SID, "--out", str(target), "--wait") == 0
    assert capsys.readouterr().out == ""
    final = msgspec.json.decode(target.read_bytes(), type=TranscriptStruct)
    assert final.text == "good morning"
    assert final.meta.complete and final.meta.stream.seq == 4


def test_transcript_to_an_impossible_path_is_one_line_exit_1(
    settings: Settings, tmp_path: Path, capsys
) -> None:
    publish(settings, events())
    target = tmp_path / "no" / "such" / "dir" / "t.json"
    assert run_cli(settings, "transcript", SID, "--out", str(target)) == 1
    err = capsys.readouterr().err
    assert err.startswith("streamscribe: ") and "No such file" in err
    assert len(err.strip().splitlines()) == 1


def test_transcript_wait_times_out_with_exit_4(settings: Settings, capsys) -> None:
    publish(settings, events()[:1])
    assert run_cli(settings, "transcript", SID, "--wait", "--timeout", "0.5") == EXIT_TIMEOUT
    assert capsys.readouterr().err.strip() == f"streamscribe: no `done` for {SID} after 0.5s"


def test_push_prints_the_session_id_first_and_writes_the_inbox(
    settings: Settings, sync_redis, capsys
) -> None:
    path = FIXTURES / "noise.flac"
    assert run_cli(settings, "push", str(path), "--fast", "--session", "pushed-1") == 0
    out = capsys.readouterr().out
    assert out == "pushed-1\n"
    entries = [f for _id, f in sync_redis.xrange(keys.inbox("pushed-1"))]
    assert entries[0][b"type"] == b"start" and entries[-1] == {b"type": b"stop"}
    assert len(entries) > 10
    assert sync_redis.xrange(keys.registry())[0][1] == {b"session_id": b"pushed-1"}

    # The same id again is refused: exit 2, nothing printed on stdout.
    assert run_cli(settings, "push", str(path), "--fast", "--session", "pushed-1") == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and "already exists" in captured.err


def test_push_wait_prints_a_summary_once_done(settings: Settings, capsys) -> None:
    path = FIXTURES / "noise.flac"

    async def push_and_finish() -> int:
        pushing = asyncio.create_task(
            asyncio.to_thread(
                run_cli, settings, "push", str(path), "--fast", "--session", SID, "--wait"
            )
        )
        await asyncio.sleep(0.5)
        assert not pushing.done()  # waiting for `done`
        await asyncio.to_thread(publish, settings, events())
        return await asyncio.wait_for(pushing, timeout=10)

    assert asyncio.run(push_and_finish()) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{SID}\n"
    assert captured.err.startswith(f"done {SID}: 1 segments, 2 words, 1.5s of audio")


def test_status_lists_pending_sessions_per_stage(settings: Settings, sync_redis, capsys) -> None:
    assert run_cli(settings, "status") == 0
    assert "no stage has started yet" in capsys.readouterr().out
    for sid in ("a-1", "b-2"):
        sync_redis.xadd(keys.registry(), {"session_id": sid})
        sync_redis.xadd(keys.inbox(sid), {"type": "stop"})
    sync_redis.xgroup_create(keys.registry(), "ingest", id="0")
    sync_redis.xreadgroup("ingest", "host-1", {keys.registry(): ">"}, count=1)
    assert run_cli(settings, "status") == 0
    out = capsys.readouterr().out
    assert "registry ss:sessions: 2 entries" in out
    assert "stage ingest: 1 active, 1 waiting, 1 consumer(s)" in out
    assert "a-1  owner host-1" in out and "in=1 audio=0 events=0" in out
