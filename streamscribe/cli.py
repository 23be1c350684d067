"""The `streamscribe` command: push audio, read events and transcripts, run workers or a stack."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from types import FrameType

import msgspec
import redis.asyncio as aioredis

from shared import keys
from shared.bus import connect
from shared.consumer import session_exists
from shared.logging import configure_logging
from shared.runner import STAGES, run_stage
from shared.schemas import Features, Transcript, encode
from shared.settings import DEFAULT_REDIS_URL, ENV_PREFIX, Settings
from streamscribe.audio_file import AudioFileError, probe
from streamscribe.client import Subscriber, read_event_json, read_transcript
from streamscribe.connection import UNREACHABLE_ERRORS, RedisUnreachable, check_reachable
from streamscribe.live_view import LiveView
from streamscribe.producer import Producer, ProducerError, PushProgress, new_session_id
from streamscribe.supervisor import Stack, StackError

EXIT_ERROR = 1
EXIT_USAGE = 2  # bad arguments, unreadable file, unknown session (argparse uses 2 too)
EXIT_REDIS = 3  # Redis did not answer
EXIT_TIMEOUT = 4  # --wait/--timeout ran out before `done`
EXIT_INTERRUPTED = 130

_REDIS_ENV = f"{ENV_PREFIX}REDIS_URL"
_FEATURES = tuple(msgspec.structs.asdict(Features()))


class CliError(Exception):
    """An expected failure: printed as one line, exits with `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- argument parsing -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamscribe",
        description="Real-time speech pipeline over Redis Streams.",
        epilog="Exit codes: 1 error, 2 usage or unknown session, 3 Redis unreachable, "
        "4 timed out, 130 interrupted.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "push", "stream an audio file as a new session; prints its id")
    p.add_argument("file", type=Path, help="any audio file (WAV, FLAC, MP3, OGG, ...)")
    p.add_argument("--session", metavar="ID", help="session id (default: a new s-<uuid12>)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed", type=_positive_float, default=1.0, metavar="X", help="x real time (1.0)"
    )
    pace.add_argument("--fast", action="store_true", help="send as fast as possible")
    p.add_argument(
        "--channels-as-speakers",
        action="store_true",
        help="keep channels (one speaker each) instead of downmixing to mono",
    )
    _session_options(p)
    p.add_argument("--wait", action="store_true", help="wait for `done`; summary to stderr")
    _timeout_option(p)

    p = _command(sub, "events", "print a session's events as JSON lines")
    p.add_argument("session_id", metavar="SID")
    p.add_argument("--follow", "-f", action="store_true", help="keep reading until `done`")
    p.add_argument("--from-seq", type=_positive_int, default=1, metavar="N", help="first seq")

    p = _command(sub, "transcript", "print a session's Transcript v2 JSON")
    p.add_argument("session_id", metavar="SID")
    p.add_argument("--out", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--wait", action="store_true", help="wait for `done` first")
    _timeout_option(p)

    p = _command(sub, "worker", "run one stage's worker (what a Kubernetes pod runs)")
    p.add_argument("stage", choices=sorted(STAGES))
    p.add_argument("--health-port", type=int, metavar="PORT", help="serve /livez /readyz /metrics")

    p = _command(
        sub, "up", "run every stage as a local process (embedded Redis unless a URL is given)"
    )
    _stack_options(p)

    p = _command(sub, "demo", "`up`, then push a recording with a live view of the transcript")
    p.add_argument("file", type=Path, nargs="?", help="audio file (default: the bundled sample)")
    p.add_argument(
        "--out", type=Path, default=Path("transcript.json"), metavar="FILE", help="(%(default)s)"
    )
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed", type=_positive_float, default=1.0, metavar="X", help="x real time (1.0)"
    )
    pace.add_argument("--fast", action="store_true", help="send as fast as possible")
    p.add_argument("--channels-as-speakers", action="store_true", help="keep channels as speakers")
    _timeout_option(p, default=300.0, what="after the push for `done`")
    _stack_options(p)

    _command(sub, "status", "sessions pending per stage and stream lengths")
    return parser


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    embedded = name in ("up", "demo")
    p.add_argument(
        "--redis-url",
        metavar="URL",
        help=f"Redis to use (default: ${_REDIS_ENV}, else "
        + ("an embedded redis-server)" if embedded else f"{DEFAULT_REDIS_URL})"),
    )
    return p


def _session_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--language", metavar="CODE", help="spoken language (default: detect)")
    p.add_argument(
        "--features",
        type=_features,
        default=Features(),
        metavar="LIST",
        help=f"comma-separated: {','.join(_FEATURES)}",
    )


def _stack_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stages",
        type=_stages,
        default=None,
        metavar="LIST",
        help=f"comma-separated stages (default: all: {','.join(STAGES)})",
    )
    p.add_argument("--workers-per-stage", type=_positive_int, default=1, metavar="N")


def _timeout_option(
    p: argparse.ArgumentParser, default: float | None = None, what: str = "for `done`"
) -> None:
    shown = "no limit" if default is None else f"{default:g}"
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=default,
        metavar="S",
        help=f"seconds to wait {what} ({shown})",
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _stages(text: str) -> list[str]:
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise argparse.ArgumentTypeError(
            f"unknown stage(s) {', '.join(unknown) or '(none)'}; known: {', '.join(STAGES)}"
        )
    return stages


def _features(text: str) -> Features:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in _FEATURES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown feature(s) {', '.join(unknown)}; known: {', '.join(_FEATURES)}"
        )
    return Features(**dict.fromkeys(names, True))


# --- entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, build Settings from the environment once, run the command."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"streamscribe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # A terminal gets readable logs unless the user chose a format.
    if sys.stderr.isatty() and f"{ENV_PREFIX}LOG_JSON" not in os.environ:
        settings = settings.with_overrides(serve__log_json=False)
    # `up` and `demo` start their own Redis unless one was named.
    named_url = args.redis_url or os.environ.get(_REDIS_ENV)
    settings = settings.with_overrides(bus__redis_url=args.redis_url)
    command: Callable[[argparse.Namespace, Settings, str | None], int] = _COMMANDS[args.command]
    try:
        return command(args, settings, named_url)
    except CliError as exc:
        print(f"streamscribe: {exc}", file=sys.stderr)
        return exc.code
    except RedisUnreachable as exc:
        print(exc, file=sys.stderr)
        return EXIT_REDIS
    except UNREACHABLE_ERRORS as exc:
        print(f"cannot reach Redis at {settings.bus.redis_url}: {exc}", file=sys.stderr)
        return EXIT_REDIS
    except (ProducerError, AudioFileError, keys.InvalidSessionId) as exc:
        print(f"streamscribe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StackError as exc:
        print(f"streamscribe: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `streamscribe events SID | head`: the reader left; not an error.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


@contextlib.asynccontextmanager
async def _redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = connect(settings.bus)
    try:
        await check_reachable(client, settings.bus.redis_url)
        yield client
    finally:
        await client.aclose()


# --- push, events, transcript, status ----------------------------------------------------


def _cmd_push(args: argparse.Namespace, settings: Settings, _url: str | None) -> int:
    return asyncio.run(_push(args, settings))


async def _push(args: argparse.Namespace, settings: Settings) -> int:
    probe(args.file)  # a bad file is the caller's error whether or not Redis answers
    async with _redis(settings) as redis:
        producer = Producer(redis, limits=settings.ingest)
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
        transcript = await _wait_done(redis, sid, args.timeout, settings)
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


async def _wait_done(
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


def _cmd_events(args: argparse.Namespace, settings: Settings, _url: str | None) -> int:
    return asyncio.run(_events(args, settings))


async def _events(args: argparse.Namespace, settings: Settings) -> int:
    async with _redis(settings) as redis:
        await _require_session(redis, args.session_id, settings)
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


def _cmd_transcript(args: argparse.Namespace, settings: Settings, _url: str | None) -> int:
    return asyncio.run(_transcript(args, settings))


async def _transcript(args: argparse.Namespace, settings: Settings) -> int:
    async with _redis(settings) as redis:
        await _require_session(redis, args.session_id, settings)
        if args.wait:
            transcript = await _wait_done(redis, args.session_id, args.timeout, settings)
        else:
            transcript = await read_transcript(redis, args.session_id)
    _write_transcript(transcript, args.out)
    return 0


def _write_transcript(transcript: Transcript, out: Path | None) -> None:
    data = msgspec.json.format(encode(transcript), indent=2) + b"\n"
    if out is None:
        sys.stdout.write(data.decode())
        sys.stdout.flush()
    else:
        out.write_bytes(data)


async def _require_session(redis: aioredis.Redis, sid: str, settings: Settings) -> None:
    keys.check_session_id(sid)
    if not await session_exists(redis, sid):
        raise CliError(EXIT_USAGE, f"unknown session {sid!r} at {settings.bus.redis_url}")


def _cmd_status(args: argparse.Namespace, settings: Settings, _url: str | None) -> int:
    from streamscribe.status import print_status

    async def run() -> None:
        async with _redis(settings) as redis:
            await print_status(redis, sys.stdout)

    asyncio.run(run())
    return 0


# --- worker, up, demo -----------------------------------------------------------------------


def _cmd_worker(args: argparse.Namespace, settings: Settings, _url: str | None) -> int:
    settings = settings.with_overrides(serve__health_port=args.health_port)
    run_stage(args.stage, settings)
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (docker stop, systemd) takes the same orderly path as Ctrl-C."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stack(args: argparse.Namespace, settings: Settings, named_url: str | None) -> Stack:
    return Stack(
        settings,
        stages=args.stages,
        workers_per_stage=args.workers_per_stage,
        redis_url=named_url,
    )


def _cmd_up(args: argparse.Namespace, settings: Settings, named_url: str | None) -> int:
    configure_logging(settings.serve.log_level, settings.serve.log_json)
    _warn_missing_pipeline_stages(args.stages, settings)
    with _sigterm_as_interrupt():
        try:
            with _stack(args, settings, named_url) as stack:
                print(f"redis: {stack.url}", flush=True)
                counts = ", ".join(f"{s} x{len(p)}" for s, p in stack.processes.items())
                print(f"ready: {counts} (Ctrl-C to stop)", file=sys.stderr, flush=True)
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return 0


def _warn_missing_pipeline_stages(stages: list[str] | None, settings: Settings) -> None:
    missing = [s for s in settings.pipeline if s not in (stages or STAGES)]
    if missing:
        print(
            f"streamscribe: warning: pipeline stage(s) {', '.join(missing)} not started; "
            "sessions will not reach `done`",
            file=sys.stderr,
        )


def _cmd_demo(args: argparse.Namespace, settings: Settings, named_url: str | None) -> int:
    configure_logging(settings.serve.log_level, settings.serve.log_json)
    _warn_missing_pipeline_stages(args.stages, settings)
    with contextlib.ExitStack() as scope:
        path = Path(args.file or scope.enter_context(resources.as_file(_sample())))
        probe(path)  # an unreadable file fails now, not after the workers loaded
        print("starting workers (the asr model takes a few seconds to load) ...", file=sys.stderr)
        scope.enter_context(_sigterm_as_interrupt())
        stack = scope.enter_context(_stack(args, settings, named_url))
        print(f"redis: {stack.url}", file=sys.stderr, flush=True)
        view = LiveView(sys.stdout, tty=sys.stdout.isatty())
        subscriber_box: list[Subscriber] = []
        try:
            asyncio.run(_demo(args, stack.settings, path, view, subscriber_box))
        finally:
            view.close()
            if subscriber_box:
                # Written on Ctrl-C too: what arrived so far, `meta.complete` false.
                _write_transcript(subscriber_box[0].transcript(), args.out)
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
    async with _redis(settings) as redis:
        sid = new_session_id()
        subscriber = Subscriber(redis, sid, block_ms=settings.bus.block_ms)
        subscriber_box.append(subscriber)
        following = asyncio.create_task(subscriber.run(view))
        try:
            await Producer(redis, limits=settings.ingest).push_file(
                path,
                session_id=sid,
                speed=None if args.fast else args.speed,
                channels_as_speakers=args.channels_as_speakers,
                features=Features(diarization=True, analytics=True, semantics=True, prosody=True),
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


_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings, str | None], int]] = {
    "push": _cmd_push,
    "events": _cmd_events,
    "transcript": _cmd_transcript,
    "worker": _cmd_worker,
    "up": _cmd_up,
    "demo": _cmd_demo,
    "status": _cmd_status,
}


if __name__ == "__main__":
    sys.exit(main())
