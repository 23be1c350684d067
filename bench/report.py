"""Render benchmark results as Markdown tables (printed, and written next to the JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _s(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table with columns padded for a terminal."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def files_table(results: dict[str, Any]) -> str:
    """Per recording, one session at a time: latency, WER streaming vs offline, decodes."""
    offline = (results.get("offline") or {}).get("files", {})
    rows = []
    for run in results["runs"]:
        if run["n"] != 1:
            continue
        s = run["sessions"][0]
        off = offline.get(s["file"], {}).get("wer", {}).get("wer")
        off_runs = offline.get(s["file"], {}).get("wer_runs") or []
        off_text = _pct(off)
        if len(set(off_runs)) > 1:  # the baseline sampled: show the spread of its runs
            off_text += f" ({_pct(min(off_runs))}-{_pct(max(off_runs))})"
        wer = s["wer_streaming"]["wer"]
        rows.append(
            [
                s["file"],
                str(s["channels"]),
                f"{s['duration_s']:.1f}",
                str(s["utterances"]),
                _s(s["final_latency_s"]["p50"]),
                _s(s["final_latency_s"]["p95"]),
                _s(s["final_latency_s"]["max"]),
                _s(s["first_partial_latency_s"]["p50"]),
                _s(s["first_partial_latency_s"]["p95"]),
                _pct(wer),
                off_text,
                "-" if off is None else f"{100 * (wer - off):+.1f}",
                str(s["decodes"]),
                _s(s["decodes_per_final"], 1),
                str(s["utterances_without_final"]),
            ]
        )
    header = [
        "file", "ch", "audio s", "utts", "final p50", "final p95", "final max",
        "1st partial p50", "1st partial p95", "WER stream", "WER offline", "diff (pp)",
        "decodes", "decodes/final", "utts w/o final",
    ]  # fmt: skip
    return table(header, rows)


def sweep_table(results: dict[str, Any]) -> str:
    """Per number of concurrent sessions: pooled latency and CPU per audio second."""
    rows = []
    for level in results["sweep"]:
        cpu = level["cpu_per_audio_s"]
        rows.append(
            [
                str(level["n"]),
                ", ".join(level["files"]),
                str(level["final_latency_s"]["n"]),
                _s(level["final_latency_s"]["p50"]),
                _s(level["final_latency_s"]["p95"]),
                _s(level["final_latency_s"]["max"]),
                _s(level["first_partial_latency_s"]["p50"]),
                _s(level["first_partial_latency_s"]["p95"]),
                str(level["utterances_without_final"]),
                _s(cpu.get("asr"), 3),
                _s(cpu.get("ingest"), 3),
                _pct(level["decode_busy"]),
                _pct(level["wer_streaming"]),
                _s(level["other_processes_cores"]),
                "yes" if level["ok"] else "no",
            ]
        )
    header = [
        "N", "files", "utts", "final p50", "final p95", "final max", "1st partial p50",
        "1st partial p95", "utts w/o final", "asr CPU s/audio s", "ingest CPU s/audio s",
        "decode busy", "WER stream", "other load (cores)", "p95 < 3 s",
    ]  # fmt: skip
    return table(header, rows)


def _ms(x: float | int | None) -> str:
    return "-" if x is None else f"{1000 * x:.0f}"


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "no")


def stages_table(results: dict[str, Any]) -> str:
    """Per run: enrich and semantic lag (ms, from events' emitted_at) against the targets."""
    t = results["config"]["stage_targets"]
    rows = []
    for run in results["runs"]:
        st = run["stages"]
        en, se = st["enrich"] or {}, st["semantic"] or {}
        lag, slag = en.get("lag_s", {}), se.get("lag_s", {})
        risk, inter = se.get("risk_tag_lag_s", {}), se.get("interruption_lag_s", {})
        once = "-"
        if en:
            once = "yes" if en["exactly_once"] else (
                f"no: {len(en['missing'])} missing, {len(en['duplicated'])} dup, "
                f"{len(en['unexpected'])} unexpected"
            )  # fmt: skip
        rows.append(
            [
                run["label"],
                f"{en['enriched']}/{en['finals_with_text']}" if en else "-",
                once,
                _ms(lag.get("p50")),
                _ms(lag.get("p95")),
                _met(en.get("meets_target")),
                _ms(slag.get("p50")),
                _ms(slag.get("p95")),
                str(risk.get("n", "-")),
                _ms(risk.get("p95")),
                _ms(risk.get("max")),
                str(inter.get("n", "-")),
                _ms(inter.get("p95")),
                _ms(inter.get("max")),
                _met(se.get("risk_tag_meets_target")),
                ", ".join(st["unfinished"]) or "-",
            ]
        )
    header = [
        "run", "enriched", "exactly once",
        f"enrich lag p50 (<= {_ms(t['enrich_lag_p50_s'])})",
        f"enrich lag p95 (<= {_ms(t['enrich_lag_p95_s'])})", "enrich target",
        "semantic lag p50", "semantic lag p95", "finals raising a risk tag",
        f"risk lag p95 (<= {_ms(t['risk_tag_lag_p95_s'])})", "risk lag max", "interruptions",
        f"interruption lag p95 (<= {_ms(t['interruption_lag_p95_s'])})", "interruption lag max",
        "risk target", "unfinished",
    ]  # fmt: skip
    return table(header, rows)


def processing_table(results: dict[str, Any]) -> str:
    """Per run: each stage's own processing time (done.processing_s) per audio second."""
    rows = []
    for run in results["runs"]:
        per_audio_s = run["stages"]["processing_per_audio_s"]
        for stage, seconds in run["stages"]["processing_s"].items():
            rows.append([run["label"], stage, f"{seconds:.2f}", _s(per_audio_s[stage], 4)])
    return table(["run", "stage", "processing s", "processing s / audio s"], rows)


def cpu_table(results: dict[str, Any]) -> str:
    """CPU per process for every run: seconds, per audio second, share of one core."""
    rows = []
    for run in results["runs"]:
        for proc, c in run["cpu"].items():
            rows.append(
                [
                    run["label"],
                    proc,
                    f"{c['cpu_s']:.1f}",
                    f"{c['per_audio_s']:.3f}",
                    _pct(c["of_one_core"]),
                ]
            )
    return table(["run", "process", "CPU s", "CPU s / audio s", "of one core"], rows)


def decode_table(results: dict[str, Any]) -> str:
    """Whisper decodes per run and kind, from the asr worker's /metrics."""
    rows = []
    for run in results["runs"]:
        for kind, d in sorted(run["decode"]["kinds"].items()):
            rows.append(
                [run["label"], kind, str(d["count"]), f"{d['seconds']:.1f}", _s(d["mean_s"], 3)]
            )
        rows.append(
            [
                run["label"],
                "busy",
                "",
                f"{run['decode']['seconds']:.1f}",
                _pct(run["decode"]["busy"]),
            ]
        )
    return table(["run", "kind", "decodes", "decode s", "mean s (busy: of wall)"], rows)


def markdown(results: dict[str, Any]) -> str:
    """The whole report."""
    m = results["machine"]
    c = results["config"]
    head = [
        "# streamscribe benchmark",
        "",
        f"{m['cpu_model']}, {m['cpus']} CPUs, {m['ram_gib']:.1f} GiB RAM; "
        f"faster-whisper {m['versions']['faster-whisper']}, "
        f"ctranslate2 {m['versions']['ctranslate2']}; "
        f"model {c['model']} on {c['device']}, compute type {c['compute_type']}, "
        f"beam {c['beam_size']}; "
        f"speed x{c['speed']}; pipeline {','.join(c['pipeline'])}.",
        "",
        "## One session at a time",
        "",
        files_table(results),
        "",
        "## Concurrent sessions",
        "",
        sweep_table(results),
        "",
        f"Largest N with final p95 < {c['p95_limit_s']:.0f} s: {results['max_sessions_ok']}",
        "",
        "## Stages behind their finals",
        "",
        "Lags in ms, each from the events' own `emitted_at`: enrich lag = `segment_enriched`"
        " minus its `segment_finalized`; semantic lag = the first `semantic_update` holding a"
        " final minus that final (risk: the finals whose first update raises a risk tag its"
        " turn did not carry before; JSON `risk_tagged_update_lag_s` has every final whose"
        " first update carries any tag);"
        " interruption lag = the `analytics_snapshot` raising the count minus the earliest"
        " final since the snapshot before it (an upper bound).",
        "",
        stages_table(results),
        "",
        "Each stage's own processing time (`done.processing_s`):",
        "",
        processing_table(results),
        "",
        "## CPU",
        "",
        cpu_table(results),
        "",
        "## Decodes",
        "",
        decode_table(results),
        "",
    ]
    return "\n".join(head)
