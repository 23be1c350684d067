"""Streaming silero VAD: marks around the utterances of synthesized speech, none in noise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from services.ingest.settings import IngestSettings
from services.ingest.vad import WINDOW, StreamingVad
from shared.schemas import VadMark
from tests.conftest import fixture_reference
from tests.support.ingest import load_fixture, vad_model

RATE = 16000
SETTINGS = IngestSettings()


def _marks(
    samples: np.ndarray, chunk: int = 320, settings: IngestSettings = SETTINGS
) -> list[VadMark]:
    vad = StreamingVad(vad_model(), 0, settings)
    marks: list[VadMark] = []
    for i in range(0, len(samples), chunk):
        marks += vad.feed(samples[i : i + chunk])
    return marks + vad.finish(len(samples))


def _utterances(name: str, channel: int | None = None) -> list[tuple[float, float]]:
    utterances: list[dict[str, float | int | None]] = fixture_reference(name)["utterances"]  # type: ignore[assignment]
    return [
        (float(u["start_s"] or 0), float(u["end_s"] or 0))
        for u in utterances
        if channel is None or u["channel"] == channel
    ]


def _speech_spans(marks: list[VadMark]) -> list[tuple[float, float]]:
    starts = [m.pos / RATE for m in marks if m.state == "start"]
    ends = [m.pos / RATE for m in marks if m.state == "end"]
    assert len(starts) == len(ends)
    return list(zip(starts, ends, strict=True))


def _assert_grammar(marks: list[VadMark]) -> None:
    """start (pause resume)* pause? end, positions never going back."""
    expect = {"start": ("pause", "end"), "pause": ("resume", "end"), "resume": ("pause", "end")}
    allowed: tuple[str, ...] = ("start",)
    for mark in marks:
        assert mark.state in allowed, [(m.state, m.pos) for m in marks]
        allowed = expect.get(mark.state, ("start",))
    positions = [m.pos for m in marks]
    assert positions == sorted(positions)


def test_marks_bracket_every_utterance_of_a_conversation() -> None:
    audio, rate = load_fixture("conv_short")
    assert rate == RATE
    marks = _marks(audio[:, 0])
    _assert_grammar(marks)
    spans = _speech_spans(marks)
    utterances = _utterances("conv_short")
    assert len(spans) == len(utterances), spans
    pad = SETTINGS.vad_speech_pad_ms / 1000
    for (start, end), (ref_start, ref_end) in zip(spans, utterances, strict=True):
        assert ref_start - pad - 0.2 <= start <= ref_start + 0.1
        assert ref_end - 0.1 <= end <= ref_end + pad + 0.3


def test_a_pause_comes_before_every_end_at_the_last_speech_window() -> None:
    audio, _ = load_fixture("conv_short")
    marks = _marks(audio[:, 0])
    pad = SETTINGS.vad_speech_pad_ms * RATE // 1000
    ends = 0
    for before, end in itertools.pairwise(marks):
        if end.state == "end":
            ends += 1
            assert before.state == "pause"
            assert end.pos == before.pos + pad
            assert before.pos % WINDOW == 0
    assert ends == len(_utterances("conv_short"))


def test_each_stereo_channel_marks_its_own_speaker() -> None:
    audio, _ = load_fixture("call_stereo")
    for channel in (0, 1):
        spans = _speech_spans(_marks(audio[:, channel]))
        utterances = _utterances("call_stereo", channel)
        assert len(spans) == len(utterances)
        for (start, _end), (ref_start, _ref_end) in zip(spans, utterances, strict=True):
            assert abs(start - ref_start) < 0.35


def test_noise_and_silence_give_no_marks() -> None:
    noise, _ = load_fixture("noise")
    assert _marks(noise[:, 0]) == []
    assert _marks(np.zeros(RATE * 2, np.float32)) == []


def test_marks_do_not_depend_on_how_audio_is_chunked() -> None:
    audio, _ = load_fixture("conv_short")
    head = audio[: RATE * 8, 0]
    assert _marks(head, chunk=160) == _marks(head, chunk=len(head))


def test_a_burst_shorter_than_min_speech_never_becomes_speech() -> None:
    audio, _ = load_fixture("conv_short")
    start_s = _utterances("conv_short")[0][0]
    burst = audio[int((start_s + 0.2) * RATE) : int((start_s + 0.5) * RATE), 0]
    signal = np.concatenate([np.zeros(RATE), burst, np.zeros(RATE)]).astype(np.float32)
    assert _speech_spans(_marks(signal)), "the burst is speech when short bursts count"
    strict = IngestSettings(vad_min_speech_ms=600)
    assert _marks(signal, settings=strict) == []


@pytest.mark.parametrize("cut_s", [3.02, 5.0])
def test_speech_running_into_the_end_is_closed_within_the_audio(cut_s: float) -> None:
    audio, _ = load_fixture("conv_short")
    clip = audio[: int(cut_s * RATE), 0]
    marks = _marks(clip)
    _assert_grammar(marks)
    assert marks[-1].state == "end"
    assert marks[-1].pos <= len(clip)


@pytest.mark.parametrize("cut_s", [1.37, 5.0, 11.2])
def test_a_vad_resumed_from_its_snapshot_marks_exactly_like_an_uninterrupted_one(
    cut_s: float,
) -> None:
    import msgspec

    from services.ingest.vad import VadState

    samples, _rate = load_fixture("conv_short")
    audio = samples[:, 0]
    settings = IngestSettings()
    whole = StreamingVad(vad_model(), 0, settings)
    expected = whole.feed(audio)
    cut = int(cut_s * 16000) + 77  # not on a window boundary
    first = StreamingVad(vad_model(), 0, settings)
    marks = first.feed(audio[:cut])
    saved = msgspec.json.decode(msgspec.json.encode(first.snapshot().to_dict()))
    resumed = StreamingVad(vad_model(), 0, settings, VadState.from_dict(saved))
    marks += resumed.feed(audio[cut:])
    assert marks == expected
