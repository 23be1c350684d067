"""What a final costs when speech stops while a partial decodes (`python -m bench.decode_overlap`).

A final-quality decode (beam 5, the track's earlier speech forced as prefix, as the
worker runs it) of a stretch of meeting_b is timed:

- alone, with nothing else decoding;
- started while a greedy partial decodes, with the worker's defaults: the partial's
  replica runs at niceness 19 (`partial_nice`), so it yields the CPU to the final;
- the same with `partial_nice=0`: the partial keeps its share of the CPU.

Every setting runs the worker's own `WhisperDecoder` (encoder threads: every core)
through the worker's `DecodeScheduler`. The time is from the moment the final was
requested to its result, as a user sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.machine import machine_info
from bench.offline import load_channels
from bench.reference import FIXTURES, load_reference
from bench.report import table
from services.asr.decoder import SAMPLE_RATE, WhisperDecoder
from services.asr.scheduler import FINAL_PRIORITY, PARTIAL_PRIORITY, DecodeScheduler
from services.asr.settings import AsrSettings

RESULTS = Path(__file__).parent / "results" / "decode_overlap.json"
# meeting_b: 2.0-12.0 s is context (its words forced as prefix), 12.0-15.0 s the utterance
# that just ended, 15.0-18.0 s the partial of whatever is decoding when it ends.
CONTEXT_S, UTTERANCE_S, PARTIAL_S = (2.0, 12.0), (12.0, 15.0), (15.0, 18.0)
# The final is requested this long after the partial started (partials run ~0.5-1 s).
REQUEST_AFTER_S = 0.15


def _clip(audio: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    return audio[int(span[0] * SAMPLE_RATE) : int(span[1] * SAMPLE_RATE)]


async def _final_latency(
    decoder: WhisperDecoder, audio: np.ndarray, prefix: str, with_partial: bool
) -> float:
    scheduler = DecodeScheduler(decoder.slots)
    context, utterance = _clip(audio, CONTEXT_S), _clip(audio, UTTERANCE_S)

    async def partial() -> None:
        async with scheduler.slot(PARTIAL_PRIORITY):
            await asyncio.to_thread(decoder.decode, _clip(audio, PARTIAL_S), final=False)

    running = asyncio.create_task(partial()) if with_partial else None
    await asyncio.sleep(REQUEST_AFTER_S if with_partial else 0)
    started = time.perf_counter()
    async with scheduler.slot(FINAL_PRIORITY):
        await asyncio.to_thread(
            decoder.decode, utterance, final=True, context=context, prefix=prefix
        )
    took = time.perf_counter() - started
    if running is not None:
        await running
    return took


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.decode_overlap", description=__doc__)
    p.add_argument("--runs", type=int, default=5, help="timed finals per setting (5)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    (audio,) = load_channels(load_reference(FIXTURES / "meeting_b.flac"))
    decoders = {n: WhisperDecoder(AsrSettings(device="cpu", partial_nice=n)) for n in (19, 0)}
    prefix = decoders[19].decode(_clip(audio, CONTEXT_S), final=True).text
    settings = [("alone", 19, False), ("beside a partial", 19, True)]
    settings += [("beside a partial, partial_nice=0", 0, True)]
    rows, results = [], []
    for name, nice, with_partial in settings:
        decoder = decoders[nice]
        asyncio.run(_final_latency(decoder, audio, prefix, with_partial))  # warm-up
        times = [
            asyncio.run(_final_latency(decoder, audio, prefix, with_partial))
            for _ in range(args.runs)
        ]
        median = statistics.median(times)
        print(f"{name:<34} median {median:.3f} s  (min {min(times):.3f}, max {max(times):.3f})")
        threads = decoder.threads
        results.append(
            {"setting": name, "partial_nice": nice, "encoder_threads": threads, "runs": times}
        )
        rows.append([name, str(nice), str(threads), f"{median:.3f}", f"{min(times):.3f}",
                     f"{max(times):.3f}"])  # fmt: skip
    print()
    print(table(["final", "partial nice", "encoder threads", "median s", "min s", "max s"], rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine_info(), "rows": results}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
