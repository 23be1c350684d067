"""Prosody of one segment: pitch over voiced frames (vectorized YIN), energy, rate, pauses."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from services.enrich.levels import energy_level, pitch_level, rate_level
from services.enrich.settings import EnrichSettings
from shared.schemas import Word

SAMPLE_RATE = 16_000
HOP = 160  # 10 ms between frames: the usual pitch-track resolution
WINDOW = 400  # 25 ms YIN integration window; with the lag range one frame spans < 1024 samples
_EPS = 1e-12
# Fewer voiced frames than this (30 ms) is a click or a glitch, not a pitch.
_MIN_VOICED_FRAMES = 3

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PitchTrack:
    """Frame-wise analysis of a segment: one row per 10 ms hop."""

    times_s: FloatArray  # frame centres, relative to the segment start
    f0_hz: FloatArray  # NaN where unvoiced
    aperiodicity: FloatArray  # YIN's normalized difference at the chosen lag (0 = periodic)
    frame_db: FloatArray  # frame energy, dBFS
    voiced: npt.NDArray[np.bool_]
    active: npt.NDArray[np.bool_]  # passes the energy gate (speech-loud)


def track_pitch(audio: npt.NDArray[np.floating[Any]], settings: EnrichSettings) -> PitchTrack:
    """YIN (difference function by FFT cross-correlation) on every 10 ms frame at once."""
    x = np.asarray(audio, dtype=np.float64).ravel()
    tau_min = max(2, int(SAMPLE_RATE // settings.pitch_max_hz))
    tau_max = math.ceil(SAMPLE_RATE / settings.pitch_min_hz)
    span = WINDOW + tau_max
    n_frames = max(1, math.ceil(len(x) / HOP))
    padded = np.zeros((n_frames - 1) * HOP + span)
    padded[: len(x)] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, span)[::HOP][:n_frames]
    nfft = 1 << (span - 1).bit_length()
    # r[t] = sum_j x[j] x[j+t] over the window; no circular wrap since nfft >= span.
    spec = np.conj(np.fft.rfft(frames[:, :WINDOW], nfft)) * np.fft.rfft(frames, nfft)
    corr = np.fft.irfft(spec, nfft)[:, : tau_max + 1]
    energy = np.concatenate(([0.0], np.cumsum(padded * padded)))
    starts = np.arange(n_frames) * HOP
    e0 = energy[starts + WINDOW] - energy[starts]
    lagged = starts[:, None] + np.arange(tau_max + 1)[None, :]
    e_tau = energy[lagged + WINDOW] - energy[lagged]
    diff = np.maximum(e0[:, None] + e_tau - 2.0 * corr, 0.0)
    diff[:, 0] = 0.0
    # Cumulative-mean normalization (YIN step 3): d'(t) = d(t) * t / sum_{k<=t} d(k).
    cum = np.cumsum(diff[:, 1:], axis=1)
    norm = np.ones_like(diff)
    norm[:, 1:] = diff[:, 1:] * np.arange(1, tau_max + 1) / np.maximum(cum, _EPS)
    cand = norm[:, tau_min : tau_max + 1]
    n_lags = cand.shape[1]

    # YIN step 4: the first dip below the threshold, followed to its local minimum; frames
    # without one take the global minimum (their aperiodicity then decides voicing).
    below = cand < settings.pitch_trough_threshold
    has_dip = below.any(axis=1)
    first = np.argmax(below, axis=1)
    pos = np.arange(n_lags)[None, :]
    after = pos >= first[:, None]
    in_run = after & (np.cumsum(~below & after, axis=1) == 0)
    dip = np.argmin(np.where(in_run, cand, np.inf), axis=1)
    best = np.where(has_dip, dip, np.argmin(cand, axis=1))
    rows = np.arange(n_frames)
    aper = cand[rows, best]

    # Parabolic interpolation around the chosen lag: sub-sample period, ~0.1 % at 200 Hz.
    inner = np.clip(best, 1, n_lags - 2)
    a, b, c = cand[rows, inner - 1], cand[rows, inner], cand[rows, inner + 1]
    denom = a - 2.0 * b + c
    shift = np.where(denom > _EPS, 0.5 * (a - c) / np.where(denom > _EPS, denom, 1.0), 0.0)
    shift = np.where(inner == best, np.clip(shift, -1.0, 1.0), 0.0)
    f0 = SAMPLE_RATE / (tau_min + best + shift)

    frame_db = 10.0 * np.log10(e0 / WINDOW + _EPS)
    loud_ref = float(np.percentile(frame_db, 95))
    active = (frame_db > settings.voicing_floor_db) & (
        frame_db > loud_ref - settings.voicing_relative_db
    )
    voiced = active & (aper < settings.voicing_threshold)
    return PitchTrack(
        times_s=(starts + WINDOW / 2) / SAMPLE_RATE,
        f0_hz=np.where(voiced, f0, np.nan),
        aperiodicity=aper,
        frame_db=frame_db,
        voiced=voiced,
        active=active,
    )


def pitch_features(track: PitchTrack, settings: EnrichSettings) -> dict[str, Any]:
    """Statistics over voiced frames only; every value None when the segment has none."""
    n_voiced = int(track.voiced.sum())
    n_active = int(track.active.sum())
    out: dict[str, Any] = {
        "voiced_frames": n_voiced,
        "voiced_ratio": round(n_voiced / n_active, 3) if n_active else 0.0,
    }
    keys = ("mean_hz", "std_hz", "p5_hz", "p95_hz", "range_hz", "range_st", "slope_st_per_s")
    if n_voiced < _MIN_VOICED_FRAMES:
        return {**dict.fromkeys(keys), "contour": None, "level": None, **out}
    f0 = track.f0_hz[track.voiced]
    times = track.times_s[track.voiced]
    mean = float(f0.mean())
    # 5th-95th percentile range: robust to the odd octave error at voicing edges.
    p5, p95 = (float(v) for v in np.percentile(f0, [5, 95]))
    semitones = 12.0 * np.log2(f0 / mean)
    slope = float(np.polyfit(times, semitones, 1)[0]) if times[-1] > times[0] else 0.0
    movement = slope * float(times[-1] - times[0])
    if movement >= settings.contour_threshold_st:
        contour = "rising"
    elif movement <= -settings.contour_threshold_st:
        contour = "falling"
    else:
        contour = "flat"
    return {
        "mean_hz": round(mean, 2),
        "std_hz": round(float(f0.std()), 2),
        "p5_hz": round(p5, 2),
        "p95_hz": round(p95, 2),
        "range_hz": round(p95 - p5, 2),
        "range_st": round(12.0 * math.log2(p95 / p5), 2),
        "slope_st_per_s": round(slope, 3),
        "contour": contour,
        "level": pitch_level(mean),
        **out,
    }


def energy_features(audio: npt.NDArray[np.floating[Any]], track: PitchTrack) -> dict[str, Any]:
    """Segment RMS in dBFS (full scale = 1.0) and the spread of speech-frame levels."""
    x = np.asarray(audio, dtype=np.float64).ravel()
    if x.size == 0:
        return {"rms_db": None, "variation_db": None, "level": None}
    rms_db = max(-120.0, 20.0 * math.log10(math.sqrt(float(np.mean(x * x))) + _EPS))
    # Variation over gated frames only: silence between words would otherwise dominate it.
    speech = track.frame_db[track.active]
    variation = round(float(speech.std()), 2) if speech.size >= 2 else None
    return {"rms_db": round(rms_db, 2), "variation_db": variation, "level": energy_level(rms_db)}


_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def count_syllables(word: str) -> int:
    """Vowel groups, less a silent final -e / -ed; digits count one each; 0 for punctuation."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return sum(ch.isdigit() for ch in word)
    n = len(_VOWEL_GROUPS.findall(w))
    if n > 1 and w.endswith("e") and not w.endswith(("le", "ee", "ie", "ye")):
        n -= 1  # make, there, come
    elif n > 1 and w.endswith("ed") and not w.endswith(("ted", "ded")):
        n -= 1  # packed, called (but waited, needed keep the syllable)
    return max(1, n)


def pause_features(
    words: Sequence[Word], segment_start: float, track: PitchTrack, settings: EnrichSettings
) -> dict[str, Any]:
    """Gaps between words of at least `pause_min_ms` whose audio is quiet."""
    gaps: list[float] = []
    rejected = 0
    speech_ref = float(np.percentile(track.frame_db, 90)) if track.frame_db.size else 0.0
    for prev, nxt in itertools.pairwise(words):
        start, end = prev.end - segment_start, nxt.start - segment_start
        if (end - start) * 1000.0 < settings.pause_min_ms:
            continue
        inside = (track.times_s >= start) & (track.times_s <= end)
        quiet = inside.any() and (
            float(np.median(track.frame_db[inside])) <= speech_ref - settings.pause_energy_drop_db
        )
        if quiet:
            gaps.append(end - start)
        else:
            rejected += 1
    span = (words[-1].end - words[0].start) if words else 0.0
    return {
        "count": len(gaps),
        "longest_ms": round(max(gaps) * 1000.0, 1) if gaps else 0.0,
        "total_ms": round(sum(gaps) * 1000.0, 1),
        "density_per_s": round(len(gaps) / span, 3) if span > 0 else None,
        "unconfirmed_gaps": rejected,
    }


def rate_features(words: Sequence[Word], pause_total_s: float) -> dict[str, Any]:
    """Articulation rate: syllables and words per second of speaking time (pauses excluded)."""
    syllables = sum(count_syllables(w.word) for w in words)
    counted = [w for w in words if count_syllables(w.word) > 0]
    speaking = (words[-1].end - words[0].start - pause_total_s) if words else 0.0
    if not counted or speaking <= 0:
        return {"syllables": syllables, "syllables_per_s": None, "words_per_s": None, "level": None}
    sps = syllables / speaking
    return {
        "syllables": syllables,
        "syllables_per_s": round(sps, 3),
        "words_per_s": round(len(counted) / speaking, 3),
        "level": rate_level(sps),
    }


def extract_prosody(
    audio: npt.NDArray[np.floating[Any]],
    words: Sequence[Word],
    segment_start: float,
    settings: EnrichSettings,
) -> dict[str, Any]:
    """Absolute prosody of one segment (16 kHz mono float audio; word times in session seconds)."""
    track = track_pitch(audio, settings)
    ordered = sorted(words, key=lambda w: w.start)
    pauses = pause_features(ordered, segment_start, track, settings)
    return {
        "pitch": pitch_features(track, settings),
        "energy": energy_features(audio, track),
        "rate": rate_features(ordered, pauses["total_ms"] / 1000.0),
        "pauses": pauses,
        "duration_s": round(len(audio) / SAMPLE_RATE, 3),
    }
