"""The CLI's argument parsing and its error exits that need no running Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.schemas import Features
from streamscribe.cli import EXIT_REDIS, EXIT_USAGE, build_parser, main
from streamscribe.embedded import free_port

FIXTURE = str(Path(__file__).parents[1] / "fixtures" / "noise.flac")


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_push_defaults_and_options() -> None:
    args = parse("push", "call.wav")
    assert (args.file, args.session, args.speed, args.fast) == (Path("call.wav"), None, 1.0, False)
    assert (args.wait, args.timeout, args.redis_url) == (False, None, None)
    assert args.features == Features()

    args = parse(
        "push", "call.wav", "--session", "abc", "--fast", "--channels-as-speakers",
        "--wait", "--timeout", "12.5", "--features", "diarization,analytics",
        "--redis-url", "redis://h:1/0",
    )  # fmt: skip
    assert (args.session, args.fast, args.channels_as_speakers) == ("abc", True, True)
    assert (args.wait, args.timeout, args.redis_url) == (True, 12.5, "redis://h:1/0")
    assert args.features == Features(diarization=True, analytics=True)


@pytest.mark.parametrize(
    "argv",
    [
        ["push", "f.wav", "--speed", "2", "--fast"],  # exclusive
        ["push", "f.wav", "--speed", "0"],
        ["push", "f.wav", "--speed", "fast"],
        ["push", "f.wav", "--timeout", "-1"],
        ["push", "f.wav", "--features", "telepathy"],
        ["push"],
        ["events", "s1", "--from-seq", "0"],
        ["worker", "no-such-stage"],
        ["up", "--stages", "ingest,nope"],
        ["up", "--workers-per-stage", "0"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_other_commands_parse() -> None:
    args = parse("events", "s-1", "--follow", "--from-seq", "7")
    assert (args.command, args.session_id, args.follow, args.from_seq) == ("events", "s-1", True, 7)
    args = parse("transcript", "s-1", "--out", "t.json", "--wait", "--timeout", "3")
    assert (args.out, args.wait, args.timeout) == (Path("t.json"), True, 3.0)
    args = parse("worker", "asr", "--health-port", "9100")
    assert (args.stage, args.health_port) == ("asr", 9100)
    args = parse("up", "--stages", "ingest, asr", "--workers-per-stage", "2")
    assert (args.stages, args.workers_per_stage) == (["ingest", "asr"], 2)
    assert parse("up").stages is None
    args = parse("demo")
    assert (args.file, args.out, args.speed, args.timeout) == (
        None, Path("transcript.json"), 1.0, 300.0
    )  # fmt: skip
    assert parse("status").command == "status"


def test_help_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    out = capsys.readouterr().out
    for command in ("push", "events", "transcript", "worker", "up", "demo", "status"):
        assert command in out


@pytest.mark.parametrize(
    "argv",
    [
        ["events", "s-1"],
        ["transcript", "s-1"],
        ["status"],
        ["push", FIXTURE, "--fast"],
    ],
)
def test_unreachable_redis_is_one_line_and_exit_3(argv: list[str], capsys) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    assert main([*argv, "--redis-url", url]) == EXIT_REDIS
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"cannot reach Redis at {url}: ")
    assert "Traceback" not in captured.err and captured.out == ""


def test_unreadable_push_file_exits_2_before_touching_redis(tmp_path: Path, capsys) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # would be exit 3 if it were asked
    assert main(["push", str(tmp_path / "missing.wav"), "--redis-url", url]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "missing.wav: no such file" in err and len(err.strip().splitlines()) == 1


def test_invalid_settings_in_the_environment_exit_2(monkeypatch, capsys) -> None:
    monkeypatch.setenv("STREAMSCRIBE_BLOCK_MS", "soon")
    assert main(["status"]) == EXIT_USAGE
    assert "block_ms" in capsys.readouterr().err
