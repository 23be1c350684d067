"""bench.replay builds the audio log a push would: producer framing through IngestSession."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from bench.replay import audio_log
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
