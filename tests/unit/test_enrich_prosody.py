"""Prosody of synthesized speech: two voices, loud/quiet, slow/fast, pauses, voicing, tones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from services.enrich.levels import energy_level, pitch_level, rate_level
from services.enrich.prosody import count_syllables, extract_prosody, track_pitch
from services.enrich.settings import EnrichSettings
from shared.schemas import Segment, Word

ENRICH_FIXTURES = Path(__file__).parents[1] / "fixtures" / "enrich"
RATE = 16000
SETTINGS = EnrichSettings()
PITCH_ORDER = ["very_low", "low", "neutral", "high", "very_high"]
ENERGY_ORDER = ["very_quiet", "quiet", "normal", "loud", "very_loud"]
RATE_ORDER = ["very_slow", "slow", "normal", "fast", "very_fast"]


def fixture_segments(name: str, speaker: str | None = None) -> list[tuple[Segment, np.ndarray]]:
    """Each segment of an enrich fixture with exactly its audio (as the worker will cut it)."""
    audio, rate = sf.read(ENRICH_FIXTURES / f"{name}.flac", dtype="float32")
    assert rate == RATE
    meta = json.loads((ENRICH_FIXTURES / f"{name}.json").read_text())
    out = []
    for k, s in enumerate(meta["segments"]):
        words = [
            Word(word=w["word"], start=w["start"], end=w["end"], probability=0.9)
            for w in s["words"]
        ]
        segment = Segment(
            id=f"{name}-{k}", start=s["start_s"], end=s["end_s"], text=s["text"],
            words=words, speaker_id=speaker, partial=False,
        )  # fmt: skip
        out.append((segment, audio[round(s["start_s"] * RATE) : round(s["end_s"] * RATE)]))
    return out


def prosody_of(name: str, index: int = 0) -> dict[str, Any]:
    segment, audio = fixture_segments(name)[index]
    return extract_prosody(audio, segment.words, segment.start, SETTINGS)


def tone(hz: float, seconds: float = 1.5, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("i", [1, 2, 3])
def test_higher_voice_has_higher_mean_pitch_and_level(i: int) -> None:
    low, high = prosody_of(f"voice_low_{i}")["pitch"], prosody_of(f"voice_high_{i}")["pitch"]
    # espeak -p 20 vs -p 80: well over two semitones apart, not a rounding difference.
    assert high["mean_hz"] > low["mean_hz"] * 1.2
    assert PITCH_ORDER.index(high["level"]) >= PITCH_ORDER.index(low["level"])


def test_loud_and_quiet_sentence_get_ordered_energy_levels() -> None:
    loud, quiet = prosody_of("loud")["energy"], prosody_of("quiet")["energy"]
    assert loud["rms_db"] - quiet["rms_db"] >= 12.0
    assert ENERGY_ORDER.index(loud["level"]) > ENERGY_ORDER.index(quiet["level"])
    # Loudness does not move pitch: the same sentence has the same pitch track.
    assert prosody_of("loud")["pitch"]["mean_hz"] == pytest.approx(
        prosody_of("quiet")["pitch"]["mean_hz"], rel=0.02
    )


def test_slow_and_fast_speech_get_ordered_rate_levels() -> None:
    slow, fast = prosody_of("slow")["rate"], prosody_of("fast")["rate"]
    assert slow["syllables"] == fast["syllables"] == 11  # same text, same syllable count
    assert fast["syllables_per_s"] >= 1.8 * slow["syllables_per_s"]
    assert fast["words_per_s"] > slow["words_per_s"]
    assert RATE_ORDER.index(fast["level"]) > RATE_ORDER.index(slow["level"])


def test_pauses_between_phrases_are_counted_with_their_length() -> None:
    pauses = prosody_of("pauses")["pauses"]
    assert pauses["count"] == 2
    assert pauses["longest_ms"] == pytest.approx(600, abs=30)
    assert pauses["density_per_s"] == pytest.approx(2 / 4.9, rel=0.1)
    assert prosody_of("loud")["pauses"]["count"] == 0


def test_a_word_gap_over_speech_is_not_a_pause() -> None:
    """Word times say there is a gap, but the audio there is speech: energy vetoes it."""
    segment, audio = fixture_segments("loud")[0]
    words = list(segment.words)
    mid = len(words) // 2
    gap_end = words[mid].start + 0.3
    words[mid] = Word(
        word=words[mid].word, start=gap_end, end=max(words[mid].end, gap_end + 0.1), probability=0.9
    )
    pauses = extract_prosody(audio, words, segment.start, SETTINGS)["pauses"]
    assert pauses["count"] == 0
    assert pauses["unconfirmed_gaps"] == 1


def test_pauses_make_the_articulation_rate_not_slower() -> None:
    """Rate is per speaking time: the 1.2 s of pauses are not counted as slow speech."""
    rate = prosody_of("pauses")["rate"]
    assert rate["syllables_per_s"] == pytest.approx(16 / (4.894 - 1.2), rel=0.02)


@pytest.mark.parametrize("hz", [70.0, 110.0, 196.0, 261.6, 440.0])
def test_pure_tone_mean_pitch_within_two_percent(hz: float) -> None:
    pitch = extract_prosody(tone(hz), [], 0.0, SETTINGS)["pitch"]
    assert pitch["mean_hz"] == pytest.approx(hz, rel=0.02)
    assert pitch["contour"] == "flat"
    assert pitch["level"] == pitch_level(hz)


def test_glides_have_rising_and_falling_contours() -> None:
    t = np.arange(int(1.5 * RATE)) / RATE
    for f0, f1, contour in ((140.0, 220.0, "rising"), (220.0, 140.0, "falling")):
        freq = f0 + (f1 - f0) * t / t[-1]
        glide = (0.3 * np.sin(2 * np.pi * np.cumsum(freq) / RATE)).astype(np.float32)
        pitch = extract_prosody(glide, [], 0.0, SETTINGS)["pitch"]
        assert pitch["contour"] == contour
        assert pitch["range_st"] > 5.0


@pytest.mark.parametrize("kind", ["zeros", "faint_noise", "loud_white_noise", "pink_noise_fixture"])
def test_no_pitch_in_silence_or_noise(kind: str) -> None:
    rng = np.random.default_rng(7)
    if kind == "zeros":
        audio = np.zeros(RATE, dtype=np.float32)
    elif kind == "faint_noise":
        audio = (3e-4 * rng.standard_normal(2 * RATE)).astype(np.float32)
    elif kind == "loud_white_noise":
        audio = (0.1 * rng.standard_normal(2 * RATE)).astype(np.float32)
    else:
        audio, _ = sf.read(Path(__file__).parents[1] / "fixtures" / "noise.flac", dtype="float32")
    prosody = extract_prosody(audio, [], 0.0, SETTINGS)
    assert prosody["pitch"]["voiced_frames"] == 0
    assert prosody["pitch"]["mean_hz"] is None
    assert prosody["pitch"]["level"] is None
    assert prosody["rate"]["syllables_per_s"] is None


def test_empty_audio_does_not_crash() -> None:
    prosody = extract_prosody(np.zeros(0, dtype=np.float32), [], 0.0, SETTINGS)
    assert prosody["pitch"]["mean_hz"] is None and prosody["energy"]["rms_db"] is None


def test_voicing_decision_whisper_and_noise_are_unvoiced_speech_is_voiced() -> None:
    whisper = prosody_of("whisper")
    voiced = prosody_of("voice_high_3")
    # Whispered speech is as loud as voiced speech but has no periodic source.
    assert abs(whisper["energy"]["rms_db"] - voiced["energy"]["rms_db"]) < 6
    assert whisper["pitch"]["voiced_ratio"] < 0.05
    assert voiced["pitch"]["voiced_ratio"] > 0.5
    # A tone that starts half-way through noise: voiced frames only where the tone is.
    rng = np.random.default_rng(3)
    audio = (0.05 * rng.standard_normal(2 * RATE)).astype(np.float32)
    audio[RATE:] += tone(150.0, 1.0)
    track = track_pitch(audio, SETTINGS)
    first_half = track.times_s < 0.95
    assert not track.voiced[first_half].any()
    assert track.voiced[track.times_s > 1.05].mean() > 0.9
    assert np.nanmean(track.f0_hz) == pytest.approx(150.0, rel=0.02)


def test_energy_level_of_scaled_signal_follows_dbfs() -> None:
    base = tone(200.0)  # amplitude 0.3 sine: RMS 0.212 = -13.5 dBFS
    assert extract_prosody(base, [], 0.0, SETTINGS)["energy"]["rms_db"] == pytest.approx(
        -13.47, abs=0.05
    )
    quieter = extract_prosody(base * 10 ** (-20 / 20), [], 0.0, SETTINGS)["energy"]
    assert quieter["rms_db"] == pytest.approx(-33.47, abs=0.05)
    assert quieter["level"] == "quiet"


@pytest.mark.parametrize(
    ("word", "n"),
    [("the", 1), ("weather", 2), ("morning.", 2), ("Nobody", 3), ("come", 1), ("packed", 1),
     ("waited", 2), ("little", 2), ("I'm", 1), ("42", 2), ("--", 0), ("finally", 3)],
)  # fmt: skip
def test_syllable_heuristic(word: str, n: int) -> None:
    assert count_syllables(word) == n


def test_absolute_cut_points_are_exactly_the_documented_ones() -> None:
    assert [pitch_level(v) for v in (79.9, 80, 119.9, 120, 179.9, 180, 249.9, 250)] == [
        "very_low", "low", "low", "neutral", "neutral", "high", "high", "very_high",
    ]  # fmt: skip
    assert [energy_level(v) for v in (-35.1, -35, -25.1, -25, -15.1, -15, -8.1, -8)] == [
        "very_quiet", "quiet", "quiet", "normal", "normal", "loud", "loud", "very_loud",
    ]  # fmt: skip
    assert [rate_level(v) for v in (2.9, 3.0, 4.4, 4.5, 5.4, 5.5, 6.9, 7.0)] == [
        "very_slow", "slow", "slow", "normal", "normal", "fast", "fast", "very_fast",
    ]  # fmt: skip


def test_word_times_are_made_relative_to_the_segment_start() -> None:
    """The same audio and words shifted by 100 s of session time give the same prosody."""
    segment, audio = fixture_segments("pauses")[0]
    shifted = [
        Word(word=w.word, start=w.start + 100, end=w.end + 100, probability=w.probability)
        for w in segment.words
    ]
    assert extract_prosody(audio, shifted, segment.start + 100, SETTINGS) == extract_prosody(
        audio, segment.words, segment.start, SETTINGS
    )
