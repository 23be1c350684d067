"""The `streamscribe` command: push audio, read events and transcripts, run workers or a stack."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from shared import keys
from shared import stages as stage_plugins
from shared.bus import REDIS_DOWN
from shared.consumer import SESSION_WAIT_S
from shared.schemas import Features
from shared.settings import DEFAULT_REDIS_URL, ENV_PREFIX, Settings
from streamscribe.audio_file import AudioFileError
from streamscribe.cli_common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_REDIS,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CliError,
    Command,
)
from streamscribe.cli_gateway import (
    add_gateway_arguments,
    add_token_arguments,
    cmd_gateway,
    cmd_token,
)
from streamscribe.cli_session import (
    cmd_context,
    cmd_events,
    cmd_push,
    cmd_status,
    cmd_transcript,
)
from streamscribe.cli_stack import cmd_demo, cmd_up, cmd_worker
from streamscribe.connection import RedisUnreachable
from streamscribe.producer import ProducerError
from streamscribe.supervisor import StackError

__all__ = ["EXIT_REDIS", "EXIT_TIMEOUT", "EXIT_USAGE", "build_parser", "main"]

_REDIS_ENV = f"{ENV_PREFIX}REDIS_URL"
_FEATURES = tuple(msgspec.structs.asdict(Features()))


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
    p.add_argument("--from-seq", type=_positive_int, default=1, metavar="N", help="first seq (1)")
    _session_wait_option(p)

    p = _command(sub, "transcript", "print a session's Transcript v2 JSON")
    p.add_argument("session_id", metavar="SID")
    p.add_argument("--out", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--wait", action="store_true", help="wait for `done` first")
    _timeout_option(p)
    _session_wait_option(p)

    p = _command(sub, "context", "print a session's LLM-ready context window (recent turns)")
    p.add_argument("session_id", metavar="SID")
    p.add_argument(
        "--follow", "-f", action="store_true", help="print it again as turns change, until done"
    )
    p.add_argument("--turns", type=_positive_int, default=10, metavar="N", help="(%(default)s)")
    p.add_argument(
        "--seconds", type=_positive_float, default=120.0, metavar="S", help="(%(default)g)"
    )
    _session_wait_option(p)

    p = _command(sub, "worker", "run one stage's worker (what a Kubernetes pod runs)")
    p.add_argument("stage", choices=stage_plugins.stage_names())
    p.add_argument("--health-port", type=int, metavar="PORT", help="serve /livez /readyz /metrics")

    p = _command(
        sub, "up", "run every stage as a local process (embedded Redis unless a URL is given)"
    )
    _stack_options(p)

    p = _command(sub, "demo", "`up`, then push a recording with a live view of the transcript")
    p.add_argument("file", type=Path, nargs="?", help="audio file (default: the bundled sample)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("transcript.json"),
        metavar="FILE",
        help="where the transcript JSON goes (%(default)s)",
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

    p = _command(sub, "gateway", "serve WebSocket /stream, REST and SSE for clients (no Redis)")
    add_gateway_arguments(p)
    p = _command(sub, "token", "mint a short-lived signed gateway token (prints it)")
    add_token_arguments(p)
    return parser


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    embedded = name in ("up", "demo")
    p.add_argument(
        "--redis-url",
        metavar="URL",
        help=f"Redis to use; redis+cluster://HOST:PORT for a Redis Cluster (default: "
        f"${_REDIS_ENV}, else "
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
        help="comma-separated stages (default: the pipeline, STREAMSCRIBE_PIPELINE; "
        f"installed: {','.join(stage_plugins.stage_names())})",
    )
    p.add_argument(
        "--workers-per-stage", type=_positive_int, default=1, metavar="N", help="(%(default)s)"
    )


def _session_wait_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--session-wait",
        type=_non_negative_float,
        default=SESSION_WAIT_S,
        metavar="S",
        help="with --follow/--wait: seconds to wait for a session that does not exist yet "
        "(%(default)g; subscribing before the producer starts is fine)",
    )


def _non_negative_float(text: str) -> float:
    if text.strip() in ("0", "0.0"):
        return 0.0
    return _positive_float(text)


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
    installed = stage_plugins.stage_names()
    unknown = [s for s in stages if s not in installed]
    if unknown or not stages:
        raise argparse.ArgumentTypeError(
            f"unknown stage(s) {', '.join(unknown) or '(none)'}; installed: {', '.join(installed)}"
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
    command = _COMMANDS[args.command]
    try:
        return command(args, settings, named_url)
    except CliError as exc:
        print(f"streamscribe: {exc}", file=sys.stderr)
        return exc.code
    except RedisUnreachable as exc:
        print(exc, file=sys.stderr)
        return EXIT_REDIS
    except REDIS_DOWN as exc:
        # Redis went away in the middle of a command (the start was checked already).
        print(f"cannot reach Redis at {settings.bus.redis_url}: {exc}", file=sys.stderr)
        return EXIT_REDIS
    except (ProducerError, AudioFileError, keys.InvalidSessionId) as exc:
        print(f"streamscribe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StackError, stage_plugins.MissingDependency, stage_plugins.BadStagePlugin) as exc:
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
    except OSError as exc:  # e.g. --out in a folder that does not exist
        print(f"streamscribe: {exc}", file=sys.stderr)
        return EXIT_ERROR


_COMMANDS: dict[str, Command] = {
    "push": cmd_push,
    "events": cmd_events,
    "transcript": cmd_transcript,
    "context": cmd_context,
    "status": cmd_status,
    "worker": cmd_worker,
    "up": cmd_up,
    "demo": cmd_demo,
    "gateway": cmd_gateway,
    "token": cmd_token,
}


if __name__ == "__main__":
    sys.exit(main())
