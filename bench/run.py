"""`make bench`: the real pipeline (redis-server + worker processes) on real-time sessions.

Runs each recording alone (N=1), then N = 2.. concurrent sessions with staggered
starts, then the offline baseline; prints tables and writes JSON + Markdown results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from bench.analysis import pooled_latencies, session_result, streaming_hypotheses
from bench.machine import machine_info, source_revision, system_busy_s
from bench.offline import offline_results
from bench.reference import Reference, default_files, load_reference, word_errors
from bench.report import (
    cpu_table,
    decode_table,
    files_table,
    markdown,
    stages_table,
    sweep_table,
)
from bench.session import SessionRecord, run_session
from bench.stack import BenchStack
from bench.stages import TARGETS, records_summary, stages_line
from services.asr.settings import AsrSettings
from shared import stages
from shared.bus import connect
from shared.settings import DEFAULT_PIPELINE, ENV_PREFIX, BusSettings, Settings

RESULTS = Path(__file__).parent / "results"
# The budget a real-time UI gives a final (latency of a line appearing as final).
P95_LIMIT_S = 3.0
_PROGRESS_EVERY_S = 5.0
# The machine is "quiet" when processes outside the benchmark use less than this.
_QUIET_CORES = 0.3
_QUICK_FILE = "meeting_b"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="one file, N=1 only (a fast check)")
    p.add_argument("--files", nargs="+", metavar="FILE", help="recordings with a sibling .json")
    p.add_argument("--max-sessions", type=int, default=4, metavar="N", help="sweep up to N (4)")
    p.add_argument("--speed", type=float, default=1.0, metavar="X", help="x real time (1.0)")
    p.add_argument("--stagger", type=float, default=1.0, metavar="S", help="start gap (1.0 s)")
    p.add_argument("--compute-type", default=None, help="asr compute type (default: the worker's)")
    p.add_argument(
        "--pipeline",
        default=",".join(DEFAULT_PIPELINE),
        metavar="STAGES",
        help="stages to run, in order; e.g. ingest,asr for asr alone (default: %(default)s)",
    )
    p.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a STREAMSCRIBE_* setting for the workers (repeatable); they get defaults otherwise",
    )
    p.add_argument("--no-offline", action="store_true", help="skip the offline WER baseline")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        metavar="S",
        help="wait in all up to S s, before runs, for other processes to leave the CPU (120)",
    )
    p.add_argument("--out", type=Path, help="JSON path (latest.json; quick.json with --quick)")
    args = p.parse_args(argv)
    if args.max_sessions < 1 or args.speed <= 0 or args.stagger < 0:
        p.error("--max-sessions must be >= 1, --speed > 0, --stagger >= 0")
    for item in args.worker_env:
        name, sep, _value = item.partition("=")
        if not sep or not name.startswith(ENV_PREFIX):
            p.error(f"--worker-env {item!r} is not {ENV_PREFIX}NAME=VALUE")
        if name == f"{ENV_PREFIX}PIPELINE":
            p.error(f"set the stages with --pipeline, not --worker-env {name}")
    args.pipeline = tuple(s.strip() for s in args.pipeline.split(",") if s.strip())
    unknown = sorted(set(args.pipeline) - set(stages.discover()))
    if unknown or not {"ingest", "asr"} <= set(args.pipeline):
        p.error(
            f"--pipeline needs ingest and asr, and installed stages only "
            f"({', '.join(sorted(stages.discover()))}); unknown: {', '.join(unknown) or '-'}"
        )
    return args


def worker_env(args: argparse.Namespace) -> dict[str, str]:
    """The settings the workers get on top of their defaults."""
    env = dict(item.split("=", 1) for item in args.worker_env)
    # `done` waits for exactly the stages that run (no done timeout for an absent one).
    env[f"{ENV_PREFIX}PIPELINE"] = ",".join(args.pipeline)
    if args.compute_type:
        env[f"{ENV_PREFIX}ASR_COMPUTE_TYPE"] = args.compute_type
    return env


def plan(refs: list[Reference], args: argparse.Namespace) -> list[tuple[str, list[Reference]]]:
    """(label, recordings) per run: each file alone, then N concurrent sessions."""
    if args.quick:
        return [(f"N=1 {refs[0].name}", refs[:1])]
    runs = [(f"N=1 {ref.name}", [ref]) for ref in refs]
    for n in range(2, args.max_sessions + 1):
        runs.append((f"N={n}", [refs[i % len(refs)] for i in range(n)]))
    return runs


async def wait_for_quiet(stack: BenchStack, args: argparse.Namespace) -> float:
    """Wait until other processes use < _QUIET_CORES, spending at most what is left of
    `args.quiet_wait` (a budget for the whole benchmark); returns their load."""
    started = time.monotonic()
    try:
        return await _wait_for_quiet(stack, started + max(args.quiet_wait, 0.0))
    finally:
        args.quiet_wait -= time.monotonic() - started


async def _wait_for_quiet(stack: BenchStack, deadline: float) -> float:
    while True:
        ours, machine, t0 = sum(stack.cpu().values()), system_busy_s(), time.monotonic()
        await asyncio.sleep(2.0)
        elapsed = time.monotonic() - t0
        other = (system_busy_s() - machine - (sum(stack.cpu().values()) - ours)) / elapsed
        if other < _QUIET_CORES or time.monotonic() >= deadline:
            return max(other, 0.0)
        print(
            f"  other processes busy {other:.2f} cores; waiting for a quieter machine", flush=True
        )


async def run_group(
    stack: BenchStack, label: str, refs: list[Reference], args: argparse.Namespace
) -> tuple[dict[str, Any], list[SessionRecord]]:
    """Run `refs` as concurrent sessions; CPU and decode counters are diffed around it."""
    other_before = await wait_for_quiet(stack, args)
    redis = connect(BusSettings(redis_url=stack.url))
    tag = label.replace("=", "").replace(" ", "-")
    records = [
        SessionRecord(ref, session_id=f"bench-{tag}-{i}-{int(time.time())}")
        for i, ref in enumerate(refs)
    ]
    print(f"\n== {label}: {len(refs)} session(s) at x{args.speed}", flush=True)
    cpu_before, decode_before = stack.cpu(), stack.workers["asr"].metrics()
    machine_before = system_busy_s()
    started = time.monotonic()
    printer = asyncio.create_task(
        _print_progress(stack, label, records, started, cpu_before, machine_before)
    )
    try:
        await asyncio.gather(
            *(
                run_session(redis, r, speed=args.speed, delay_s=i * args.stagger)
                for i, r in enumerate(records)
            )
        )
    finally:
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
        await redis.aclose()
    wall_s = time.monotonic() - started
    stack.check_alive()
    cpu_after, decode_after = stack.cpu(), stack.workers["asr"].metrics()
    ours_s = sum(cpu_after[p] - cpu_before[p] for p in cpu_after)
    # Whatever else ran on the machine meanwhile competed for the same cores.
    other_s = max(0.0, system_busy_s() - machine_before - ours_s)
    audio_s = sum(r.reference.duration_s for r in records)
    stage_summary = records_summary(records, args.pipeline)
    result = {
        "label": label,
        "n": len(records),
        "files": [r.reference.name for r in records],
        "wall_s": round(wall_s, 2),
        "audio_s": round(audio_s, 3),
        **pooled_latencies(records),
        "cpu": {
            proc: {
                "cpu_s": round(cpu_after[proc] - cpu_before[proc], 2),
                "per_audio_s": round((cpu_after[proc] - cpu_before[proc]) / audio_s, 4),
                "of_one_core": round((cpu_after[proc] - cpu_before[proc]) / wall_s, 4),
            }
            for proc in cpu_after
        },
        "other_processes_cores": round(other_s / wall_s, 3),
        "other_processes_cores_before": round(other_before, 3),
        "decode": _decode_stats(decode_before, decode_after, wall_s),
        "sessions": [
            {**session_result(r), "stages": records_summary([r], args.pipeline)} for r in records
        ],
        "stages": stage_summary,
    }
    for r in records:
        print("  " + r.progress_line(), flush=True)
    lat = pooled_latencies(records)["final_latency_s"]
    asr_cpu = (cpu_after["asr"] - cpu_before["asr"]) / audio_s
    print(
        f"   finals p50 {lat['p50']} s  p95 {lat['p95']} s  max {lat['max']} s  "
        f"asr CPU {asr_cpu:.3f} s/audio s; other processes busy "
        f"{result['other_processes_cores']:.2f} cores",
        flush=True,
    )
    print("   " + stages_line(stage_summary), flush=True)
    return result, records


async def _print_progress(
    stack: BenchStack,
    label: str,
    records: list[SessionRecord],
    started: float,
    cpu_before: dict[str, float],
    machine_before: float,
) -> None:
    while True:
        await asyncio.sleep(_PROGRESS_EVERY_S)
        elapsed = time.monotonic() - started
        cpu = stack.cpu()
        used = {p: (cpu[p] - cpu_before[p]) / elapsed for p in cpu}
        other = (system_busy_s() - machine_before) / elapsed - sum(used.values())
        busy = ", ".join(f"{stage} {used[stage]:.2f}" for stage in stack.stages)
        print(
            f"  [{label} +{elapsed:4.0f}s] cores busy: {busy}, "
            f"other processes {max(other, 0.0):.2f}",
            flush=True,
        )
        for r in records:
            print("    " + r.progress_line(), flush=True)


def _decode_stats(
    before: dict[str, float], after: dict[str, float], wall_s: float
) -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    for key, value in after.items():
        if not key.startswith("streamscribe_asr_decode_seconds_count{"):
            continue
        kind = key.split("kind=", 1)[1].rstrip("}")
        sum_key = key.replace("_count{", "_sum{")
        count = int(value - before.get(key, 0.0))
        seconds = after.get(sum_key, 0.0) - before.get(sum_key, 0.0)
        if count:
            kinds[kind] = {
                "count": count,
                "seconds": round(seconds, 3),
                "mean_s": round(seconds / count, 4),
            }
    total = sum(k["seconds"] for k in kinds.values())
    return {"kinds": kinds, "seconds": round(total, 3), "busy": round(total / wall_s, 4)}


def sweep(
    runs: list[dict[str, Any]],
    records: dict[str, list[SessionRecord]],
    pipeline: Sequence[str] = DEFAULT_PIPELINE,
) -> list[dict[str, Any]]:
    """Runs grouped by N (the N=1 runs of every file pool into one level)."""
    levels = []
    for n in sorted({r["n"] for r in runs}):
        group = [r for r in runs if r["n"] == n]
        recs = [rec for r in group for rec in records[r["label"]]]
        audio_s = sum(r["audio_s"] for r in group)
        cpu = {
            proc: round(sum(r["cpu"][proc]["cpu_s"] for r in group) / audio_s, 4)
            for proc in group[0]["cpu"]
        }
        sessions = [s for r in group for s in r["sessions"]]
        wer = word_errors(
            [t for rec in recs for t in rec.reference.texts()],
            [
                t
                for rec in recs
                if rec.reducer
                for t in streaming_hypotheses(rec.reducer, rec.reference)
            ],
        )
        pooled = pooled_latencies(recs)
        p95 = pooled["final_latency_s"]["p95"]
        complete = all(s["completed"] for s in sessions)
        levels.append(
            {
                "n": n,
                "files": [s["file"] for s in sessions] if n > 1 else ["each alone"],
                **pooled,
                "utterances_without_final": sum(s["utterances_without_final"] for s in sessions),
                "all_completed": complete,
                "cpu_per_audio_s": cpu,
                "decode_busy": round(
                    sum(r["decode"]["seconds"] for r in group) / sum(r["wall_s"] for r in group), 4
                ),
                "wer_streaming": round(wer.wer, 4),
                "other_processes_cores": round(
                    sum(r["other_processes_cores"] * r["wall_s"] for r in group)
                    / sum(r["wall_s"] for r in group),
                    3,
                ),
                "ok": complete and p95 is not None and p95 < P95_LIMIT_S,
                "stages": records_summary(recs, pipeline),
            }
        )
    return levels


def max_ok(levels: list[dict[str, Any]]) -> int:
    """Largest N such that every level up to it keeps final p95 under the limit."""
    best = 0
    for level in levels:
        if not level["ok"]:
            break
        best = level["n"]
    return best


async def streaming(
    refs: list[Reference], args: argparse.Namespace, log_dir: Path
) -> tuple[list[dict[str, Any]], dict[str, list[SessionRecord]]]:
    env = worker_env(args)
    print(
        f"starting redis-server + {', '.join(args.pipeline)} workers (model load) ...", flush=True
    )
    runs: list[dict[str, Any]] = []
    records: dict[str, list[SessionRecord]] = {}
    with BenchStack(log_dir, stages=args.pipeline, extra_env=env) as stack:
        print(f"workers ready; logs in {log_dir}", flush=True)
        for label, group in plan(refs, args):
            result, recs = await run_group(stack, label, group, args)
            runs.append(result)
            records[label] = recs
    return runs, records


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM takes the Ctrl-C path, so the workers and redis-server are stopped too.
    signal.signal(signal.SIGTERM, _interrupt)
    files = args.files or default_files()
    refs = [load_reference(f) for f in files]
    if args.quick and not args.files:
        refs = [r for r in refs if r.name == _QUICK_FILE] or refs[:1]
    out = args.out or RESULTS / ("quick.json" if args.quick else "latest.json")
    log_dir = Path("out") / "bench"
    started = time.monotonic()
    # Taken before the workers start: they run the code checked out at this moment.
    source = source_revision()
    try:
        runs, records = asyncio.run(streaming(refs, args, log_dir))
    except KeyboardInterrupt:
        print("interrupted; workers and redis-server stopped, nothing written", file=sys.stderr)
        return 130
    # The offline baseline decodes with the very model settings the asr worker had.
    asr = Settings.from_env(worker_env(args)).stage("asr", AsrSettings)
    offline = None
    if not args.no_offline:
        print("\n== offline baseline: faster-whisper transcribe on each whole file", flush=True)
        offline = offline_results(refs, asr)
    levels = sweep(runs, records, args.pipeline)
    first = runs[0]["sessions"][0]
    results: dict[str, Any] = {
        "machine": machine_info(),
        "source": source,
        "config": {
            "model": first.get("model"),
            "device": first.get("device"),
            "compute_type": first.get("compute_type"),
            "beam_size": first.get("beam_size"),
            "pipeline": list(args.pipeline),
            "stage_targets": TARGETS,
            "speed": args.speed,
            "stagger_s": args.stagger,
            "quick": args.quick,
            "p95_limit_s": P95_LIMIT_S,
            "worker_env": worker_env(args),
            "worker_settings": asdict(Settings.from_env(worker_env(args))),
        },
        "runs": runs,
        "sweep": levels,
        "max_sessions_ok": max_ok(levels),
        "offline": offline,
        "bench_wall_s": round(time.monotonic() - started, 1),
    }
    results["config"]["worker_settings"].pop("worker_name", None)
    print(
        "\n"
        + "\n\n".join(
            [
                files_table(results),
                sweep_table(results),
                stages_table(results),
                cpu_table(results),
                decode_table(results),
            ]
        )
    )
    print(f"\nlargest N with final p95 < {P95_LIMIT_S:.0f} s: {results['max_sessions_ok']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    print(f"wrote {out} and {out.with_suffix('.md')} ({results['bench_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
