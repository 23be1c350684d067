"""Decoding PCM and Opus frames, splitting or downmixing channels, resampling to 16 kHz."""

from __future__ import annotations

import numpy as np
import pytest

from services.ingest.decode import AudioNormalizer, DecodeError
from shared.schemas import SessionConfig
from tests.support.ingest import opus_packets, pcm_bytes, pcm_frames, tone


def _run(normalizer: AudioNormalizer, frames: list[bytes]) -> dict[int, np.ndarray]:
    parts: dict[int, list[np.ndarray]] = {t: [] for t in normalizer.tracks}
    for frame in frames:
        for track, samples in normalizer.decode(frame).items():
            parts[track].append(samples)
    for track, samples in normalizer.flush().items():
        parts[track].append(samples)
    return {t: np.concatenate(p) for t, p in parts.items()}


def _dominant_hz(samples: np.ndarray, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def test_s16_mono_decodes_exactly() -> None:
    values = np.array([0, 16384, -32768, 32767], dtype="<i2")
    normalizer = AudioNormalizer(SessionConfig(encoding="pcm_s16le"))
    (track,) = normalizer.decode(values.tobytes()).values()
    np.testing.assert_allclose(track, [0.0, 0.5, -1.0, 32767 / 32768])


def test_f32_is_sanitized_and_clipped() -> None:
    raw = np.array([0.25, np.nan, np.inf, -7.0], dtype="<f4").tobytes()
    (track,) = AudioNormalizer(SessionConfig(encoding="pcm_f32le")).decode(raw).values()
    np.testing.assert_allclose(track, [0.25, 0.0, 1.0, -1.0])


def test_stereo_channels_as_speakers_split_into_tracks() -> None:
    frames = np.array([[0.5, -0.25], [0.1, 0.2]], dtype=np.float32)  # (samples, channels)
    config = SessionConfig(encoding="pcm_f32le", channels=2, channels_as_speakers=True)
    tracks = AudioNormalizer(config).decode(pcm_bytes(frames, "pcm_f32le"))
    assert sorted(tracks) == [0, 1]
    np.testing.assert_allclose(tracks[0], [0.5, 0.1])
    np.testing.assert_allclose(tracks[1], [-0.25, 0.2])


def test_stereo_is_downmixed_to_the_mean() -> None:
    frames = np.array([[0.5, -0.25], [0.1, 0.3]], dtype=np.float32)
    config = SessionConfig(encoding="pcm_s16le", channels=2)
    tracks = AudioNormalizer(config).decode(pcm_bytes(frames, "pcm_s16le"))
    assert list(tracks) == [0]
    np.testing.assert_allclose(tracks[0], [0.125, 0.2], atol=1e-4)


def test_pcm_with_a_partial_sample_frame_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        AudioNormalizer(SessionConfig(encoding="pcm_s16le", channels=2)).decode(b"\x00" * 6)


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_resampling_to_16k_keeps_duration_and_pitch(rate: int) -> None:
    seconds = 3.0
    samples = tone(seconds, rate)
    config = SessionConfig(encoding="pcm_f32le", sample_rate=rate)
    frames = pcm_frames(samples, "pcm_f32le", rate // 50)  # 20 ms frames
    (out,) = _run(AudioNormalizer(config), frames).values()
    assert abs(len(out) - seconds * 16000) <= 0.01 * seconds * 16000
    assert abs(_dominant_hz(out) - 440.0) < 2.0
    assert 0.25 < np.abs(out[4000:-4000]).max() < 0.35


def test_16k_input_is_passed_through_untouched() -> None:
    samples = tone(1.0, 16000)
    frames = pcm_frames(samples, "pcm_s16le", 320)
    (out,) = _run(AudioNormalizer(SessionConfig()), frames).values()
    expected = np.frombuffer(b"".join(frames), "<i2").astype(np.float32) / 32768
    np.testing.assert_array_equal(out, expected)


def test_opus_round_trip_mono() -> None:
    seconds = 2.0
    packets = opus_packets(tone(seconds, 48000))
    config = SessionConfig(encoding="opus", sample_rate=48000)
    (out,) = _run(AudioNormalizer(config), packets).values()
    assert abs(len(out) - seconds * 16000) <= 0.02 * seconds * 16000
    assert abs(_dominant_hz(out) - 440.0) < 2.0
    steady = out[8000:-8000]
    assert abs(np.sqrt(np.mean(steady**2)) - 0.3 / np.sqrt(2)) < 0.03


def test_opus_stereo_channels_as_speakers() -> None:
    packets = opus_packets(tone(2.0, 48000, channels=2))  # 440 Hz left, 880 Hz right
    config = SessionConfig(
        encoding="opus", sample_rate=48000, channels=2, channels_as_speakers=True
    )
    tracks = _run(AudioNormalizer(config), packets)
    assert len(tracks[0]) == len(tracks[1])
    assert abs(_dominant_hz(tracks[0]) - 440.0) < 2.0
    assert abs(_dominant_hz(tracks[1]) - 880.0) < 2.0


def test_garbage_opus_packet_fails_and_the_decoder_recovers() -> None:
    packets = opus_packets(tone(0.5, 48000))
    normalizer = AudioNormalizer(SessionConfig(encoding="opus", sample_rate=48000))
    normalizer.decode(packets[0])
    with pytest.raises(DecodeError):
        normalizer.decode(b"\xff" * 2000)
    with pytest.raises(DecodeError):
        normalizer.decode(b"")
    (after,) = normalizer.decode(packets[1]).values()
    assert len(after) > 0
