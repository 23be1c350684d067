"""The whole-file pass against itself: the same audio, started a few milliseconds later.

The streaming acceptance line compares each file's streaming WER with one whole-file
run of the same model. This measures how far that baseline moves on its own: each
recording is transcribed as `make bench` transcribes it offline, then again with
20 ms, 100 ms and 500 ms of silence in front (the speech itself unchanged), and the
files whose shifted run is more than 2 points worse than the unshifted one are
counted (docs/BENCHMARKS.md, "The whole-file pass against itself").

    python -m bench.offline_shift bench/fixtures/*.flac out/dev/*.flac [--shifts 0.02 0.1]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.offline import load_channels, transcribe
from bench.reference import load_reference, word_errors
from services.asr.decoder import SAMPLE_RATE, WhisperDecoder
from services.asr.settings import AsrSettings
from shared.settings import Settings

# The acceptance line's margin, in WER (2 points).
MARGIN = 0.02


def shifted(audio: np.ndarray, shift_s: float) -> np.ndarray:
    """`audio` with `shift_s` seconds of digital silence in front."""
    return np.concatenate([np.zeros(round(shift_s * SAMPLE_RATE), dtype=np.float32), audio])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="FLAC/WAV with a .json reference")
    parser.add_argument(
        "--shifts",
        nargs="+",
        type=float,
        default=[0.02, 0.1, 0.5],
        metavar="S",
        help="seconds of silence put in front (default: 0.02 0.1 0.5)",
    )
    args = parser.parse_args(argv)
    decoder = WhisperDecoder(Settings.from_env().stage("asr", AsrSettings))
    shifts = [0.0, *args.shifts]
    errors = dict.fromkeys(shifts, 0)
    worse: dict[float, list[str]] = {s: [] for s in args.shifts}
    words = 0
    for path in args.files:
        ref = load_reference(path)
        channels = load_channels(ref)
        runs = {
            s: word_errors(ref.texts(), [transcribe(decoder, shifted(c, s)) for c in channels])
            for s in shifts
        }
        words += runs[0.0].reference_words
        for s, e in runs.items():
            errors[s] += e.errors
            if s and e.wer - runs[0.0].wer > MARGIN:
                worse[s].append(ref.name)
        cells = "  ".join(f"+{s:.2f} s {e.wer:6.1%}" for s, e in runs.items())
        print(f"{ref.name:22s} {cells}", flush=True)
    words = max(words, 1)
    print("pooled: " + "  ".join(f"+{s:.2f} s {errors[s] / words:.2%}" for s in shifts))
    for s, names in worse.items():
        print(
            f"+{s:.2f} s: {len(names)} of {len(args.files)} files more than "
            f"{MARGIN * 100:.0f} points above the unshifted run: {' '.join(names) or '-'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
