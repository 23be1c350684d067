"""Replay a recording's finals without Redis or a clock: the WER side of `make bench`, fast.

Finals are a function of the audio log (docs/BENCHMARKS.md), so they can be derived
offline: the producer's framing and the ingest stage's `IngestSession` build the log a
push would, the real `SessionTracker` asks for the decodes a final needs, and the real
`WhisperDecoder` runs them. Partials are skipped, since a final never depends on them
(it reuses a pause-time decode only when that decode is the very one it would run).
On the bench recordings this gives the same streaming WER as the live pipeline, in a
fraction of the time, which makes it the tool for trying decoder settings:
`STREAMSCRIBE_ASR_*` variables apply as in a worker.

    python -m bench.replay bench/fixtures/*.flac [--offline [--by-utterance]] [--show]
                                                 [--hold S]

`--by-utterance` charges each word error to the reference utterance it falls in and
splits the totals into each track's first utterance and the rest, for streaming and
offline: where the gap between them comes from (docs/BENCHMARKS.md).

`--hold S` measures what a final held back by S seconds would gain: each final's
utterance is decoded with the S seconds of audio that follow it, and the words that
start after the utterance are dropped. The worker never does this (it would put every
final S seconds later); it is how "Held back finals" in docs/BENCHMARKS.md was measured.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from redis.typing import EncodableT, FieldT

from bench.offline import load_channels, median_offline_run
from bench.reference import Reference, errors_per_utterance, load_reference, word_errors
from services.asr.decoder import SAMPLE_RATE, WhisperDecoder
from services.asr.settings import AsrSettings
from services.asr.tracker import DecodeRequest, SessionTracker
from services.ingest.core import ErrorNotice, IngestSession
from services.ingest.settings import IngestSettings
from services.ingest.vad import SileroModel
from shared.audio_log import pcm_to_float
from shared.schemas import AudioChunk, AudioEntry, Segment, SessionConfig
from shared.settings import Settings
from streamscribe.audio_file import decode, frame_samples, probe, split_frames
from streamscribe.producer import media_fields, start_fields, stop_fields

# Producer frames per ingest batch: 0.1 s of 20 ms frames, about what one ingest read
# holds at real-time pace.
FRAMES_PER_BATCH = 5


def audio_log(path: Path, stereo: bool, settings: Settings) -> list[AudioEntry]:
    """The entries ingest appends for `path` pushed as `streamscribe push` sends it.

    The producer's own decoding and framing (20 ms pcm_s16le at the file's rate, stereo
    kept only for `stereo`), fed through the ingest stage's real `IngestSession`, so
    resampling, downmix, VAD and the order of chunks and marks are the worker's.
    """
    info = probe(path, channels_as_speakers=stereo)
    config = SessionConfig(
        sample_rate=info.sample_rate,
        encoding="pcm_s16le",
        channels=info.channels,
        channels_as_speakers=stereo,
    )
    frames = split_frames(decode(info), frame_samples(info.sample_rate, 20))
    messages = [start_fields(config)]
    messages += [media_fields(seq, frame) for seq, frame in enumerate(frames, 1)]
    messages.append(stop_fields())
    session = IngestSession(
        "replay", settings.stage("ingest", IngestSettings), SileroModel(), settings.pipeline
    )
    entries: list[AudioEntry] = []
    for first in range(0, len(messages), FRAMES_PER_BATCH):
        batch = [
            (f"{first + k + 1}-0", _as_read(fields))
            for k, fields in enumerate(messages[first : first + FRAMES_PER_BATCH])
        ]
        out = session.handle_batch(batch)
        errors = [n for n in out.notices if isinstance(n, ErrorNotice)]
        if errors:
            raise ValueError(f"{path}: ingest rejected the file: {errors[0]}")
        entries.extend(out.entries)
    return entries


def _as_read(fields: Mapping[FieldT, EncodableT]) -> dict[bytes, bytes]:
    """A producer message as a Redis read returns it (bytes keys and values)."""
    return {_bytes(k): _bytes(v) for k, v in fields.items()}


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def replay(
    path: Path, stereo: bool, decoder: WhisperDecoder, settings: Settings, hold_s: float = 0.0
) -> list[Segment]:
    """Every final the asr stage would publish for this audio, in publish order.

    `hold_s` > 0: each final is decoded with that much of the audio after its utterance
    (see the module docstring); the words that start after the utterance are dropped.
    """
    asr = settings.stage("asr", AsrSettings)
    tracker = SessionTracker(
        "replay",
        partial_interval_s=asr.partial_interval_s,
        max_utterance_s=asr.max_utterance_s,
        prompt_chars=asr.prompt_chars,
        channels_as_speakers=stereo,
        speech_pad_s=settings.stage("ingest", IngestSettings).vad_speech_pad_ms / 1000,
        context_s=asr.context_s,
        provenance=decoder.provenance("en", 0),
    )
    entries = audio_log(path, stereo, settings)
    tracks = _tracks(entries) if hold_s > 0 else {}
    finals: list[Segment] = []
    for i, entry in enumerate(entries):
        tracker.feed(f"{i + 1}-0", entry)
        while tracker.pending() in ("final", "cut"):
            req = tracker.next_request()
            assert req is not None and req.kind != "partial"
            audio = _held(req, tracks, hold_s) if req.kind == "final" and tracks else req.audio
            hyp = decoder.decode(
                audio, prompt=req.prompt, final=True, context=req.context, prefix=req.prefix
            )
            if len(audio) > len(req.audio):
                utterance_s = len(req.audio) / SAMPLE_RATE
                hyp.words = [w for w in hyp.words if w.start < utterance_s]
                hyp.audio_s = utterance_s
            tracker.on_result(req, hyp)
        finals.extend(o.segment for o in tracker.take_outputs() if o.final)
    return finals


def _tracks(entries: Sequence[AudioEntry]) -> dict[int, np.ndarray]:
    """Each channel's whole 16 kHz audio, from the log's chunks."""
    chunks = [e for e in entries if isinstance(e, AudioChunk)]
    tracks: dict[int, np.ndarray] = {}
    for channel in {c.channel for c in chunks}:
        mine = [(c.pos, pcm_to_float(c.pcm)) for c in chunks if c.channel == channel]
        audio = np.zeros(max(pos + len(a) for pos, a in mine), dtype=np.float32)
        for pos, a in mine:
            audio[pos : pos + len(a)] = a
        tracks[channel] = audio
    return tracks


def _held(req: DecodeRequest, tracks: dict[int, np.ndarray], hold_s: float) -> np.ndarray:
    """The request's utterance and the `hold_s` seconds of audio after it."""
    audio = tracks[req.channel]
    return audio[req.start_pos : min(len(audio), req.end_pos + round(hold_s * SAMPLE_RATE))]


def channel_texts(finals: Sequence[Segment], n_channels: int) -> list[str]:
    return [
        " ".join(s.text for s in sorted(finals, key=lambda s: s.start) if (s.channel or 0) == ch)
        for ch in range(n_channels)
    ]


def first_and_rest(ref: Reference, hypotheses: Sequence[str]) -> tuple[int, int]:
    """Word errors in each track's first utterance, and in all the others."""
    first = rest = 0
    channels = list(range(ref.channels)) if ref.stereo else [None]
    for channel, hypothesis in zip(channels, hypotheses, strict=True):
        utts = [u.text for u in ref.utterances if u.channel == channel]
        errors = errors_per_utterance(utts, hypothesis)
        first, rest = first + sum(errors[:1]), rest + sum(errors[1:])
    return first, rest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="FLAC/WAV with a .json reference")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="also the whole-file WER (median of runs, as make bench reports it)",
    )
    parser.add_argument("--show", action="store_true", help="print every final")
    parser.add_argument(
        "--hold",
        type=float,
        default=0.0,
        metavar="S",
        help="decode each final with the S seconds of audio after it (an experiment)",
    )
    parser.add_argument(
        "--by-utterance",
        action="store_true",
        help="with --offline: errors in each track's first utterance vs the rest",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    decoder = WhisperDecoder(settings.stage("asr", AsrSettings))
    totals = {"stream": 0, "offline": 0, "words": 0}
    split = {"stream": [0, 0], "offline": [0, 0]}
    for path in args.files:
        ref = load_reference(path)
        channels = load_channels(ref)
        started = time.perf_counter()
        finals = replay(ref.path, ref.stereo, decoder, settings, hold_s=args.hold)
        streamed = channel_texts(finals, len(channels))
        scored = word_errors(ref.texts(), streamed)
        totals["stream"] += scored.errors
        totals["words"] += scored.reference_words
        line = (
            f"{ref.name:18s} streaming {scored.wer:6.1%} ({scored.errors} errors, "
            f"{len(finals)} finals, {time.perf_counter() - started:.0f} s)"
        )
        if args.offline:
            median, _runs = median_offline_run(decoder, ref, channels)
            offline, off = median.texts, median.errors
            totals["offline"] += off.errors
            line += f"  offline {off.wer:6.1%} ({off.errors})  diff {scored.wer - off.wer:+.1%}"
            if args.by_utterance:
                for key, hyps in (("stream", streamed), ("offline", offline)):
                    first, rest = first_and_rest(ref, hyps)
                    split[key][0] += first
                    split[key][1] += rest
                    line += f"  {key} first/rest {first}/{rest}"
        print(line, flush=True)
        if args.show:
            for s in sorted(finals, key=lambda s: (s.channel or 0, s.start)):
                print(f"    [{s.channel}] {s.start:6.2f}-{s.end:6.2f} {s.text}")
    words = max(totals["words"], 1)
    pooled = f"pooled: streaming {totals['stream'] / words:.2%} ({totals['stream']}/{words})"
    if args.offline:
        pooled += f", offline {totals['offline'] / words:.2%} ({totals['offline']})"
    print(pooled)
    if args.offline and args.by_utterance:
        print(
            "errors in first utterances (streaming/offline): "
            f"{split['stream'][0]}/{split['offline'][0]}; in the rest: "
            f"{split['stream'][1]}/{split['offline'][1]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
