"""The real model decoding an utterance with the previous one as context (no Redis)."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from services.asr.decoder import SAMPLE_RATE, WhisperDecoder
from services.asr.settings import AsrSettings
from tests.conftest import FIXTURES, fixture_reference
from tests.support.pipeline import wer


@pytest.fixture(scope="module")
def decoder() -> WhisperDecoder:
    return WhisperDecoder(AsrSettings())


def _span(audio: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    return audio[int(start_s * SAMPLE_RATE) : int(end_s * SAMPLE_RATE)]


def test_context_decode_returns_only_the_new_utterance(decoder: WhisperDecoder) -> None:
    audio, rate = sf.read(str(FIXTURES / "conv_short.flac"), dtype="float32")
    assert rate == SAMPLE_RATE
    first, second = fixture_reference("conv_short")["utterances"][:2]  # type: ignore[index]
    context = _span(audio, first["start_s"] - 0.1, second["start_s"] - 0.1)
    utterance = _span(audio, second["start_s"] - 0.1, second["end_s"] + 0.12)

    hyp = decoder.decode(utterance, context=context, prefix=first["text"])

    assert wer(second["text"], hyp.text) <= 0.15, hyp.text
    assert "joining" not in hyp.text.lower()  # the context's words are not repeated
    assert hyp.words[0].start >= 0.0
    assert hyp.words[-1].end <= len(utterance) / SAMPLE_RATE + 0.2


def test_a_prefix_the_audio_does_not_hold_falls_back_to_the_utterance_alone(
    decoder: WhisperDecoder,
) -> None:
    audio, _rate = sf.read(str(FIXTURES / "conv_short.flac"), dtype="float32")
    first, second = fixture_reference("conv_short")["utterances"][:2]  # type: ignore[index]
    utterance = _span(audio, second["start_s"] - 0.1, second["end_s"] + 0.12)
    # Silence as "context" for a long forced text: whatever comes back, the result is
    # the utterance's own words, never the forced text.
    silence = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    hyp = decoder.decode(utterance, context=silence, prefix=first["text"] * 40)

    assert wer(second["text"], hyp.text) <= 0.15, hyp.text


def _thread_nice() -> dict[int, int]:
    """Niceness of every thread of this process, from /proc (Linux)."""
    nice = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            stat = (task / "stat").read_text()
            nice[int(task.name)] = int(stat[stat.rindex(")") + 2 :].split()[16])
    return nice


@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="reads thread priorities from /proc"
)
def test_partials_decode_on_their_own_replica_at_low_priority() -> None:
    before = _thread_nice()
    decoder = WhisperDecoder(AsrSettings(partial_nice=7))
    started = {tid: nice for tid, nice in _thread_nice().items() if tid not in before}

    assert decoder.priority_warning is None
    assert 7 in started.values(), "the partial replica's worker threads run at partial_nice"
    assert 0 in started.values(), "the final-quality replica's do not"
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0
    audio, _rate = sf.read(str(FIXTURES / "conv_short.flac"), dtype="float32")
    first = fixture_reference("conv_short")["utterances"][0]  # type: ignore[index]
    utterance = _span(audio, first["start_s"] - 0.1, first["end_s"] + 0.12)
    partial = decoder.decode(utterance, final=False)
    assert wer(first["text"], partial.text) <= 0.15, partial.text


def test_a_final_of_more_than_one_window_decodes(decoder: WhisperDecoder) -> None:
    # faster-whisper hands each 30 s window of longer audio to the encoder as a strided
    # view of the whole recording's features, which the many-thread encoder must accept.
    audio, _rate = sf.read(str(FIXTURES / "conv_short.flac"), dtype="float32")
    long = np.concatenate([audio] * (1 + int(35 * SAMPLE_RATE) // len(audio)))
    hyp = decoder.decode(long, final=True)
    first = fixture_reference("conv_short")["utterances"][0]["text"]  # type: ignore[index]
    assert wer(first, " ".join(w.word for w in hyp.words[:5])) <= 0.2, hyp.text


def test_the_many_thread_encoder_serves_only_a_lone_final(decoder: WhisperDecoder) -> None:
    if decoder._encoder is None:
        pytest.skip("one core: there is no many-thread encoder")
    assert decoder._pick_encoder() is None, "partials use their own replica's encoder"
    with decoder._quality_decode(final=True):
        assert decoder._pick_encoder() is decoder._encoder
        with decoder._quality_decode(final=True):
            assert decoder._pick_encoder() is None, "two finals: one thread each"
        with decoder._quality_decode(final=False):
            assert decoder._pick_encoder() is decoder._encoder
