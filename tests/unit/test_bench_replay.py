"""bench.replay builds the audio log a push would (producer framing through IngestSession);
its held-final experiment and bench.offline_shift see the audio they claim to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from bench.offline_shift import shifted
from bench.replay import _held, _tracks, audio_log
from services.asr.decoder import SAMPLE_RATE
from services.asr.tracker import DecodeRequest
from shared.schemas import AudioChunk, EndMark, VadMark
from shared.settings import Settings

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _samples_per_channel(entries: list, channel: int) -> int:
    return sum(
        len(e.pcm) // 2 for e in entries if isinstance(e, AudioChunk) and e.channel == channel
    )


def test_mono_log_covers_the_file_with_paired_vad_marks() -> None:
    path = FIXTURES / "conv_short.flac"
    entries = audio_log(path, stereo=False, settings=Settings())
    assert isinstance(entries[-1], EndMark)
    assert _samples_per_channel(entries, 0) == sf.info(str(path)).frames == entries[-1].pos
    states = [e.state for e in entries if isinstance(e, VadMark) and e.state in ("start", "end")]
    assert states and states == ["start", "end"] * (len(states) // 2)


def test_stereo_as_speakers_gives_one_track_per_channel() -> None:
    path = FIXTURES / "call_stereo.flac"
    entries = audio_log(path, stereo=True, settings=Settings())
    frames = sf.info(str(path)).frames
    assert _samples_per_channel(entries, 0) == _samples_per_channel(entries, 1) == frames
    marked = {e.channel for e in entries if isinstance(e, VadMark)}
    assert marked == {0, 1}


def test_tracks_rebuild_each_channel_of_the_file_from_the_log() -> None:
    path = FIXTURES / "call_stereo.flac"
    audio, _rate = sf.read(str(path), dtype="float32", always_2d=True)
    tracks = _tracks(audio_log(path, stereo=True, settings=Settings()))
    assert sorted(tracks) == [0, 1]
    for channel, track in tracks.items():
        np.testing.assert_array_equal(track, audio[:, channel])


def test_a_held_final_sees_the_audio_after_its_utterance_up_to_the_end() -> None:
    track = np.arange(10 * SAMPLE_RATE, dtype=np.float32)
    req = DecodeRequest(
        channel=0,
        kind="final",
        seg_id="seg-0-16000",
        start_pos=SAMPLE_RATE,
        end_pos=3 * SAMPLE_RATE,
        audio=track[SAMPLE_RATE : 3 * SAMPLE_RATE],
        prompt="",
        generation=0,
    )
    held = _held(req, {0: track}, hold_s=1.5)
    assert held[0] == SAMPLE_RATE and len(held) == round(3.5 * SAMPLE_RATE)
    # Past the end of the recording there is nothing more to hold for.
    assert len(_held(req, {0: track}, hold_s=60.0)) == 9 * SAMPLE_RATE


def test_offline_shift_puts_silence_in_front_and_keeps_the_speech() -> None:
    audio = np.ones(100, dtype=np.float32)
    out = shifted(audio, 0.02)
    assert len(out) == 100 + round(0.02 * SAMPLE_RATE)
    assert not out[: round(0.02 * SAMPLE_RATE)].any() and out[-100:].all()
