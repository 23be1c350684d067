"""CLI commands on sessions: push, events, transcript, status."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import redis.asyncio as aioredis

from shared import keys
from shared.consumer import UnknownSession, read_event_json, wait_for_session
from shared.protocol import limits_from
from shared.schemas import Done, Transcript, TurnUpdated
from shared.settings import Settings
from streamscribe.audio_file import probe
from streamscribe.cli_common import (
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CliError,
    open_redis,
    write_transcript,
)
from streamscribe.client import Subscriber, read_transcript
from streamscribe.producer import Producer, PushProgress
from streamscribe.status import print_status


def cmd_push(args: argparse.Namespace, settings: Settings, _url: str | None) -> int:
    return asyncio.run(_push(args, settings))


async def _push(args: argparse.Namespace, settings: Settings) -> int:
    probe(args.file)  # a bad file is the caller's error whether or not Redis answers
    async with open_redis(settings) as redis:
        producer = Producer(redis, limits=limits_from(settings.stages.get("ingest")))
        printer = _ProgressPrinter() if sys.stderr.isatty() else None
        sid = await producer.push_file(
            args.file,
            session_id=args.session,
            speed=None if args.fast else args.speed,
            channels_as_speakers=args.channels_as_speakers,
            language=args.language,
            features=args.features,
            # The id goes out first and alone, as soon as it exists: `SID=$(... | head -1)`.
            on_started=lambda sid: print(sid, flush=True),
            on_progress=printer,
        )
        if not args.wait:
            return 0
        started = time.monotonic()
        transcript = await wait_done(redis, sid, args.timeout, settings)
        print(_summary(transcript, time.monotonic() - started), file=sys.stderr)
        return 0


class _ProgressPrinter:
    """`pushing SID: 12.3/41.5s` redrawn in place on stderr, at most once a second."""

    def __init__(self) -> None:
        self._last = float("-inf")

    def __call__(self, progress: PushProgress) -> None:
        now = time.monotonic()
        if not progress.finished and now - self._last < 1.0:
            return
        self._last = now
        total = f"/{progress.total_s:.1f}" if progress.total_s else ""
        end = "\n" if progress.finished else ""
        sys.stderr.write(
            f"\r\x1b[2Kpushing {progress.session_id}: {progress.audio_sent_s:.1f}{total}s{end}"
        )
        sys.stderr.flush()


async def wait_done(
    redis: aioredis.Redis, sid: str, timeout_s: float | None, settings: Settings
) -> Transcript:
    try:
        return await read_transcript(
            redis, sid, wait=True, timeout_s=timeout_s, block_ms=settings.bus.block_ms
        )
    except TimeoutError:
        raise CliError(EXIT_TIMEOUT, f"no `done` for {sid} after {timeout_s:g}s") from None


def _summary(transcript: Transcript, waited_s: float) -> str:
    meta = transcript.meta
    finals = [s for s in transcript.segments if not s.partial]
    words = len(transcript.text.split())
    model = f", model {meta.model} on {meta.device}" if meta.model else ""
    errors = f", {len(meta.errors)} error(s)" if meta.errors else ""
    return (
        f"done {meta.stream.session_id}: {len(finals)} segments, {words} words, "
        f"{meta.duration_s or 0:.1f}s of audio{model}{errors} (waited {waited_s:.1f}s)"
    )


def cmd_events(args: argparse.Namespace, settings: Settings, _url: str | None) -> int:
    return asyncio.run(_events(args, settings))


async def _events(args: argparse.Namespace, settings: Settings) -> int:
    async with open_redis(settings) as redis:
        await _require_session(
            redis, args.session_id, settings, args.session_wait if args.follow else 0.0
        )
        async for data in read_event_json(
            redis,
            args.session_id,
            from_seq=args.from_seq,
            follow=args.follow,
            block_ms=settings.bus.block_ms,
        ):
            sys.stdout.write(data.decode() + "\n")
            sys.stdout.flush()
    return 0


def cmd_context(args: argparse.Namespace, settings: Settings, _url: str | None) -> int:
    return asyncio.run(_context(args, settings))


async def _context(args: argparse.Namespace, settings: Settings) -> int:
    """Print the context window; with --follow, again each time a turn changes it."""
    async with open_redis(settings) as redis:
        await _require_session(
            redis, args.session_id, settings, args.session_wait if args.follow else 0.0
        )
        subscriber = Subscriber(
            redis, args.session_id, follow=args.follow, block_ms=settings.bus.block_ms
        )
        shown = None
        async for event in subscriber:
            if not args.follow or not isinstance(event, TurnUpdated | Done):
                continue
            text = subscriber.context(max_turns=args.turns, max_seconds=args.seconds)
            if text != shown:
                sys.stdout.write(f"--- seq {event.seq}\n{text}\n")
                sys.stdout.flush()
                shown = text
        if not args.follow:
            sys.stdout.write(subscriber.context(max_turns=args.turns, max_seconds=args.seconds))
            sys.stdout.write("\n")
    return 0


def cmd_transcript(args: argparse.Namespace, settings: Settings, _url: str | None) -> int:
    return asyncio.run(_transcript(args, settings))


async def _transcript(args: argparse.Namespace, settings: Settings) -> int:
    async with open_redis(settings) as redis:
        await _require_session(
            redis, args.session_id, settings, args.session_wait if args.wait else 0.0
        )
        if args.wait:
            transcript = await wait_done(redis, args.session_id, args.timeout, settings)
        else:
            transcript = await read_transcript(redis, args.session_id)
    write_transcript(transcript, args.out)
    return 0


async def _require_session(
    redis: aioredis.Redis, sid: str, settings: Settings, wait_s: float
) -> None:
    keys.check_session_id(sid)
    try:
        await wait_for_session(redis, sid, wait_s)
    except UnknownSession:
        waited = f" (waited {wait_s:g} s)" if wait_s else ""
        raise CliError(
            EXIT_USAGE, f"unknown session {sid!r} at {settings.bus.redis_url}{waited}"
        ) from None


def cmd_status(args: argparse.Namespace, settings: Settings, _url: str | None) -> int:
    async def run() -> None:
        async with open_redis(settings) as redis:
            await print_status(redis, sys.stdout)

    asyncio.run(run())
    return 0
