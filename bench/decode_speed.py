"""Decode time of WhisperDecoder.decode per CPU compute type (`python -m bench.decode_speed`).

Decodes a 3 s and a 10 s stretch of speech from a benchmark recording with every
(compute type, encoder threads) pair: one warm-up each, then `--runs` rounds in which every
pair decodes once (interleaved, so drifting background load hits all pairs alike), and
reports the median wall and process-CPU time per decode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import machine_info, system_busy_s
from bench.offline import load_channels
from bench.reference import FIXTURES, load_reference
from bench.report import table
from services.asr.decoder import SAMPLE_RATE, WhisperDecoder
from services.asr.settings import AsrSettings

COMPUTE_TYPES = ("int8", "int8_float32", "float32")
# Threads of the encoder pass (`cpu_threads`; the worker's default is every core); the
# beam search after it always runs on one. Here one decode runs at a time, final quality.
THREADS = (1, 2)
# Stretches of meeting_b from just before its first word (speech with its pauses).
CLIP_START_S = 0.5
CLIP_LENGTHS_S = (3.0, 10.0)
RESULTS = Path(__file__).parent / "results" / "decode_speed.json"


def measure(
    decoders: dict[tuple[str, int], WhisperDecoder], clips: dict[float, np.ndarray], runs: int
) -> list[dict[str, Any]]:
    """Median wall and process-CPU seconds per decode, for every decoder and clip."""
    rows = []
    for length, audio in clips.items():
        walls: dict[tuple[str, int], list[float]] = {k: [] for k in decoders}
        cpus: dict[tuple[str, int], list[float]] = {k: [] for k in decoders}
        texts: dict[tuple[str, int], str] = {}
        for decoder in decoders.values():
            decoder.decode(audio)  # warm-up: the first call allocates and caches
        for _ in range(runs):
            for key, decoder in decoders.items():
                wall0, cpu0 = time.perf_counter(), time.process_time()
                texts[key] = decoder.decode(audio).text
                walls[key].append(time.perf_counter() - wall0)
                cpus[key].append(time.process_time() - cpu0)
        for key, decoder in decoders.items():
            row = {
                "compute_type": key[0],
                "effective_compute_type": decoder.model.model.compute_type,
                "cpu_threads": key[1],
                "audio_s": length,
                "runs": runs,
                "wall_median_s": round(statistics.median(walls[key]), 4),
                "wall_min_s": round(min(walls[key]), 4),
                "wall_max_s": round(max(walls[key]), 4),
                "cpu_median_s": round(statistics.median(cpus[key]), 4),
                "text": texts[key],
            }
            rows.append(row)
            print(
                f"{key[0]:<13} threads {key[1]}  {length:4.0f} s audio: "
                f"median {row['wall_median_s']:.3f} s wall, {row['cpu_median_s']:.3f} s CPU",
                flush=True,
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.decode_speed", description=__doc__)
    p.add_argument("--runs", type=int, default=5, help="timed decodes per pair and clip (5)")
    p.add_argument("--compute-types", nargs="+", default=list(COMPUTE_TYPES), metavar="TYPE")
    p.add_argument("--threads", nargs="+", type=int, default=list(THREADS), metavar="N")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    (audio,) = load_channels(load_reference(FIXTURES / "meeting_b.flac"))
    first = int(CLIP_START_S * SAMPLE_RATE)
    clips = {n: audio[first : first + int(n * SAMPLE_RATE)] for n in CLIP_LENGTHS_S}
    decoders = {
        (ct, n): WhisperDecoder(
            AsrSettings(device="cpu", compute_type=ct, cpu_threads=n, decode_slots=1)
        )
        for ct in args.compute_types
        for n in args.threads
    }
    busy0, wall0 = system_busy_s(), time.monotonic()
    rows = measure(decoders, clips, args.runs)
    machine_load = (system_busy_s() - busy0) / (time.monotonic() - wall0)
    print()
    print(
        table(
            [
                "compute type",
                "runs as",
                "threads",
                "audio s",
                "median wall s",
                "min s",
                "max s",
                "median CPU s",
            ],
            [
                [
                    r["compute_type"],
                    r["effective_compute_type"],
                    str(r["cpu_threads"]),
                    f"{r['audio_s']:.0f}",
                    f"{r['wall_median_s']:.3f}",
                    f"{r['wall_min_s']:.3f}",
                    f"{r['wall_max_s']:.3f}",
                    f"{r['cpu_median_s']:.3f}",
                ]
                for r in rows
            ],
        )
    )
    print(f"machine busy during the measurement: {machine_load:.2f} cores (this process included)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine_info(), "machine_busy_cores": round(machine_load, 3), "rows": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
