"""push_file's pure parts: decoding any file, splitting into frames, pacing against a clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamscribe.audio_file import (
    AudioFileError,
    Pacer,
    decode,
    frame_duration_s,
    frame_samples,
    probe,
    split_frames,
    target_rate,
    to_s16,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _blocks(sizes: list[int], channels: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.uniform(-0.9, 0.9, (n, channels)).astype(np.float32) for n in sizes]


@pytest.mark.parametrize("channels", [1, 2])
def test_split_frames_gives_exact_frames_and_a_short_tail_without_losing_samples(
    channels: int,
) -> None:
    blocks = _blocks([100, 7, 1000, 319, 1, 333], channels)
    frames = list(split_frames(iter(blocks), 320))
    total = sum(len(b) for b in blocks)  # 1760 = 5 * 320 + 160
    assert [len(f) for f in frames] == [320 * channels * 2] * 5 + [160 * channels * 2]
    expected = to_s16(np.concatenate(blocks)).tobytes()  # interleaved (samples, channels)
    assert b"".join(frames) == expected
    assert sum(frame_duration_s(f, 16000, channels) for f in frames) == pytest.approx(total / 16000)


def test_split_frames_of_nothing_is_nothing() -> None:
    assert list(split_frames(iter([]), 320)) == []


def test_to_s16_is_exact_for_s16_input_and_clips() -> None:
    pcm = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    assert np.array_equal(to_s16(pcm.astype(np.float32) / 32768.0), pcm)
    assert to_s16(np.array([-2.0, 2.0], np.float32)).tolist() == [-32768, 32767]


def test_frame_samples_and_rate_policy() -> None:
    assert frame_samples(16000, 20) == 320
    assert frame_samples(44100, 20) == 882
    assert frame_samples(8000, 10) == 80
    with pytest.raises(ValueError, match="no samples"):
        frame_samples(8000, 0.01)
    # Rates ingest accepts stay native; others go to 16 kHz.
    assert [target_rate(r) for r in (8000, 22050, 44100, 48000)] == [8000, 22050, 44100, 48000]
    assert [target_rate(r) for r in (6000, 96000, 192000)] == [16000, 16000, 16000]


def test_pacer_schedules_against_audio_time_without_drift() -> None:
    clock = FakeClock()
    pacer = Pacer(2.0, clock=clock)
    pacer.start()
    waits, sent_at = [], []
    for i in range(1, 101):
        delay = pacer.delay_s(i * 0.02)
        waits.append(delay)
        clock.now += delay
        sent_at.append(clock.now - 100.0)
        clock.now += 0.003 if i % 10 else 0.05  # each send costs time; some stall
    # Frame i (0.02 s of audio each, at 2x) goes out at i * 0.01 s, never earlier, and
    # the last one exactly on time: deadlines are absolute, so stalls do not add up.
    assert all(t >= i * 0.01 - 1e-9 for i, t in enumerate(sent_at, 1))
    assert sent_at[-1] == pytest.approx(1.0, abs=1e-9)
    assert waits[0] == pytest.approx(0.01)
    assert waits[10] == 0.0  # right after a 50 ms stall the next frames are already due
    assert pacer.elapsed_s() == pytest.approx(1.05)


def test_pacer_late_is_zero_and_none_is_as_fast_as_possible() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, clock=clock)
    pacer.start()
    clock.now += 5
    assert pacer.delay_s(1.0) == 0.0
    assert pacer.delay_s(6.5) == pytest.approx(1.5)
    assert Pacer(None, clock=clock).delay_s(1000.0) == 0.0


@pytest.mark.parametrize("speed", [0, -1.0, float("inf"), float("nan")])
def test_pacer_rejects_nonsense_speeds(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        Pacer(speed)


@pytest.mark.parametrize(("fmt", "suffix"), [("WAV", ".wav"), ("FLAC", ".flac"), ("OGG", ".ogg")])
def test_decode_resamples_out_of_range_rates_and_downmixes(
    tmp_path: Path, fmt: str, suffix: str
) -> None:
    rate = 96000 if fmt != "OGG" else 6000  # vorbis tops out below 96 kHz; 6 kHz is too low
    t = np.arange(int(rate * 0.5)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    path = tmp_path / f"tone{suffix}"
    sf.write(path, stereo, rate, format=fmt)

    info = probe(path)
    assert (info.source_rate, info.source_channels) == (rate, 2)
    assert (info.sample_rate, info.channels) == (16000, 1)
    mono = np.concatenate(list(decode(info)))
    assert mono.shape[1] == 1
    assert len(mono) / 16000 == pytest.approx(0.5, abs=0.02)
    # Downmix is the mean of the channels: 0.5 amplitude on one side -> 0.25.
    assert np.abs(mono[800:-800]).max() == pytest.approx(0.25, abs=0.03)

    kept = probe(path, channels_as_speakers=True)
    both = np.concatenate(list(decode(kept)))
    assert both.shape[1] == 2
    assert np.abs(both[800:-800, 0]).max() == pytest.approx(0.5, abs=0.05)
    assert np.abs(both[:, 1]).max() < 0.01


def test_decode_keeps_a_native_rate_sample_exact() -> None:
    path = FIXTURES / "conv_short.flac"
    info = probe(path)
    assert not info.resampled
    frames = list(split_frames(decode(info), frame_samples(info.sample_rate, 20)))
    pcm, rate = sf.read(path, dtype="int16")
    assert rate == info.sample_rate
    assert b"".join(frames) == np.ascontiguousarray(pcm).tobytes()


def test_unreadable_files_raise_audio_file_error(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="no such file"):
        probe(tmp_path / "missing.wav")
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n" * 50)
    with pytest.raises(AudioFileError):
        probe(text)
