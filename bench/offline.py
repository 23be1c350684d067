"""Offline baseline: the same model transcribing each whole recording in one call."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from bench.reference import Reference, WordErrors, word_errors
from services.asr.decoder import SAMPLE_RATE, WhisperDecoder
from services.asr.settings import AsrSettings


def load_channels(ref: Reference) -> list[np.ndarray]:
    """16 kHz float32 audio: one array per channel for stereo, the mono mix otherwise."""
    audio, rate = sf.read(str(ref.path), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE)
    if ref.stereo:
        return [np.ascontiguousarray(audio[:, ch]) for ch in range(audio.shape[1])]
    return [np.ascontiguousarray(audio.mean(axis=1))]


def transcribe(decoder: WhisperDecoder, audio: np.ndarray) -> str:
    """faster-whisper's own long-form transcription: its defaults, with the finals' beam."""
    segments, _info = decoder.model.transcribe(
        audio, language="en", beam_size=decoder.settings.beam_size, vad_filter=False
    )
    return " ".join(s.text.strip() for s in segments)


@dataclass(frozen=True, slots=True)
class OfflineRun:
    """One whole-file transcription of a recording, scored."""

    errors: WordErrors
    texts: list[str]
    wall_s: float


def median_offline_run(
    decoder: WhisperDecoder,
    ref: Reference,
    channels: Sequence[np.ndarray],
    repeats: int = 3,
) -> tuple[OfflineRun, list[OfflineRun]]:
    """The median of up to `repeats` whole-file runs, and every run.

    faster-whisper's default temperature fallback samples, so a file whose beam result
    fails its checks decodes differently from run to run (docs/BENCHMARKS.md). The file
    is transcribed twice; only when the two texts differ, up to `repeats` times.
    """
    runs: list[OfflineRun] = []
    for attempt in range(max(1, repeats)):
        started = time.perf_counter()
        texts = [transcribe(decoder, audio) for audio in channels]
        runs.append(
            OfflineRun(word_errors(ref.texts(), texts), texts, time.perf_counter() - started)
        )
        if attempt == 1 and runs[0].texts == runs[1].texts:
            break  # the same text twice: nothing was sampled
    return sorted(runs, key=lambda run: run.errors.wer)[len(runs) // 2], runs


def offline_results(refs: Sequence[Reference], settings: AsrSettings) -> dict[str, Any]:
    """Per file: offline WER (per channel pooled for stereo), text, and decode wall time.

    The median of repeated runs (`median_offline_run`), with every run's WER in
    `wer_runs`.
    """
    decoder = WhisperDecoder(settings)
    out: dict[str, Any] = {
        "model": decoder.model_name,
        "device": decoder.device,
        "compute_type": decoder.compute_type,
        "beam_size": settings.beam_size,
        "files": {},
    }
    for ref in refs:
        median, runs = median_offline_run(decoder, ref, load_channels(ref))
        out["files"][ref.name] = {
            "wer": median.errors.as_dict(),
            "wer_runs": [round(run.errors.wer, 4) for run in runs],
            "wer_mode": "per-channel, pooled" if ref.stereo else "mono",
            "wall_s": round(median.wall_s, 3),
            "rtf": round(median.wall_s / ref.duration_s, 4),
            "hypothesis": median.texts,
        }
    return out
