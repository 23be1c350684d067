"""The real model decoding an utterance with the previous one as context (no Redis)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from services.asr.decoder import SAMPLE_RATE, WhisperDecoder
from shared.settings import AsrSettings
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
