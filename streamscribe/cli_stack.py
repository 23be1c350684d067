"""CLI commands that run processes: `worker` (one stage), `up` (all of them), `demo`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from types import FrameType

from shared.logging import configure_logging
from shared.protocol import limits_from
from shared.runner import run_stage
from shared.schemas import Features
from shared.settings import ENV_PREFIX, Settings
from streamscribe.audio_file import probe
from streamscribe.cli_common import EXIT_TIMEOUT, CliError, open_redis, write_transcript
from streamscribe.cli_gateway import stack_gateway
from streamscribe.client import Subscriber
from streamscribe.live_view import LiveView
from streamscribe.producer import Producer, new_session_id
from streamscribe.supervisor import GATEWAY, Stack


def cmd_worker(args: argparse.Namespace, settings: Settings, _url: str | None) -> int:
    settings = settings.with_overrides(serve__health_port=args.health_port)
    run_stage(args.stage, settings)
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (docker stop, systemd) takes the same orderly path as Ctrl-C.

    SIGINT is set too: a shell starts background jobs (`streamscribe up &`) with SIGINT
    ignored, and `kill -INT` should still stop the stack.
    """

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stack(args: argparse.Namespace, settings: Settings, named_url: str | None) -> Stack:
    gateway = stack_gateway()
    args.gateway = gateway
    return Stack(
        settings,
        stages=[*(args.stages or settings.pipeline), GATEWAY],
        workers_per_stage=args.workers_per_stage,
        redis_url=named_url,
        env={**os.environ, **gateway.env},
    )


def cmd_up(args: argparse.Namespace, settings: Settings, named_url: str | None) -> int:
    configure_logging(settings.serve.log_level, settings.serve.log_json)
    _warn_missing_pipeline_stages(args.stages, settings)
    with _sigterm_as_interrupt():
        try:
            with _stack(args, settings, named_url) as stack:
                print(f"redis: {stack.url}", flush=True)
                counts = ", ".join(f"{s} x{len(p)}" for s, p in stack.processes.items())
                print(f"ready: {counts} (Ctrl-C to stop)", file=sys.stderr, flush=True)
                print(args.gateway.describe(), file=sys.stderr, flush=True)
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return 0


def _warn_missing_pipeline_stages(stages: list[str] | None, settings: Settings) -> None:
    missing = [s for s in settings.pipeline if s not in (stages or settings.pipeline)]
    if missing:
        print(
            f"streamscribe: warning: pipeline stage(s) {', '.join(missing)} not started; "
            "sessions will not reach `done`",
            file=sys.stderr,
        )


def cmd_demo(args: argparse.Namespace, settings: Settings, named_url: str | None) -> int:
    if f"{ENV_PREFIX}LOG_LEVEL" not in os.environ:
        # Worker chatter would tear through the live view; warnings still show.
        settings = settings.with_overrides(serve__log_level="warning")
    configure_logging(settings.serve.log_level, settings.serve.log_json)
    _warn_missing_pipeline_stages(args.stages, settings)
    with contextlib.ExitStack() as scope:
        path = Path(args.file or scope.enter_context(resources.as_file(_sample())))
        probe(path)  # an unreadable file fails now, not after the workers loaded
        print("starting workers (the asr model takes a few seconds to load) ...", file=sys.stderr)
        scope.enter_context(_sigterm_as_interrupt())
        stack = scope.enter_context(_stack(args, settings, named_url))
        print(f"redis: {stack.url}", file=sys.stderr, flush=True)
        print(args.gateway.describe(), file=sys.stderr, flush=True)
        view = LiveView(sys.stdout, tty=sys.stdout.isatty())
        subscriber_box: list[Subscriber] = []
        try:
            asyncio.run(_demo(args, stack.settings, path, view, subscriber_box))
        finally:
            view.close()
            if subscriber_box:
                # Written on Ctrl-C too: what arrived so far, `meta.complete` false.
                write_transcript(subscriber_box[0].transcript(), args.out)
                print(f"transcript: {args.out.resolve()}", flush=True)
    return 0


def _sample() -> resources.abc.Traversable:
    return resources.files("streamscribe").joinpath("data", "sample.flac")


async def _demo(
    args: argparse.Namespace,
    settings: Settings,
    path: Path,
    view: LiveView,
    subscriber_box: list[Subscriber],
) -> None:
    async with open_redis(settings) as redis:
        sid = new_session_id()
        subscriber = Subscriber(redis, sid, block_ms=settings.bus.block_ms)
        subscriber_box.append(subscriber)
        following = asyncio.create_task(subscriber.run(view))
        try:
            await Producer(redis, limits=limits_from(settings.stages.get("ingest"))).push_file(
                path,
                session_id=sid,
                speed=None if args.fast else args.speed,
                channels_as_speakers=args.channels_as_speakers,
                # No feature flags: the enrich and semantic stages do not exist yet, and
                # the transcript's meta.stream.features must not claim what nobody made.
                features=Features(),
                on_started=lambda s: print(f"session: {s}", file=sys.stderr, flush=True),
                on_progress=view.on_push_progress,
            )
            try:
                await asyncio.wait_for(asyncio.shield(following), timeout=args.timeout)
            except TimeoutError:
                raise CliError(
                    EXIT_TIMEOUT, f"no `done` for {sid} {args.timeout:g}s after the push"
                ) from None
        finally:
            if not following.done():
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await following
