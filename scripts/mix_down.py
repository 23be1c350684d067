#!/usr/bin/env python3
"""Write mono mixes of stereo recordings, with a mono reference, for WER work (out/mix/).

A stereo file pushed without `--channels-as-speakers` is mixed down by ingest (the mean
of its channels), and faster-whisper mixes it down the same way for the whole-file
pass. `bench.replay` replays a stereo file one speaker per channel, so the mixed-down
case is measured on these copies: `NAME_mix.flac` (16-bit, the channels' mean) and
`NAME_mix.json` (the same utterances, without channels). docs/BENCHMARKS.md's tables
of mixed-down recordings were made this way.

Usage:  python3 scripts/mix_down.py tests/fixtures/call_stereo.flac out/dev/*.flac [--out DIR]
        (mono inputs are skipped)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import soundfile as sf


def mix_down(flac: Path, out_dir: Path) -> Path | None:
    """The mono copy of `flac` and its reference; None for a file that is already mono."""
    meta = json.loads(flac.with_suffix(".json").read_text())
    if int(meta["channels"]) < 2:
        return None
    audio, rate = sf.read(str(flac), dtype="float32", always_2d=True)
    out = out_dir / f"{flac.stem}_mix.flac"
    sf.write(str(out), audio.mean(axis=1), rate, subtype="PCM_16")
    meta["channels"] = 1
    meta["utterances"] = [{**u, "channel": None} for u in meta["utterances"]]
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="FLAC with a .json reference")
    parser.add_argument("--out", type=Path, default=Path("out/mix"), help="(out/mix)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for flac in args.files:
        written = mix_down(flac, args.out)
        if written is not None:
            print(written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
