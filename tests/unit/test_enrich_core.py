"""The Enricher: payload layout, failed components, acoustic arousal, resumable state."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

import services.enrich.core as core
from services.enrich.core import Enricher, warm
from services.enrich.emotion import EmotionModel
from services.enrich.rendering import render
from services.enrich.settings import EnrichSettings
from shared.schemas import EnrichmentPayload, Segment
from tests.unit.test_enrich_emotion import save_classifier, save_regressor
from tests.unit.test_enrich_prosody import fixture_segments

SETTINGS = EnrichSettings()


def conversation(speaker: str | None = "spk_a") -> list[tuple[Segment, np.ndarray]]:
    names = ["voice_low_1", "voice_low_2", "voice_low_3", "loud", "quiet", "slow", "fast", "pauses"]
    return [item for name in names for item in fixture_segments(name, speaker)]


def test_payload_layout_and_order() -> None:
    items = conversation()
    payloads = Enricher(SETTINGS).enrich_batch(items)
    assert [p.segment_id for p in payloads] == [s.id for s, _ in items]
    for p in payloads:
        state = p.audio_state
        assert set(state) == {"prosody", "emotion", "rendering", "speaker_id"}
        assert set(state["prosody"]) >= {"pitch", "energy", "rate", "pauses", "relative"}
        assert state["rendering"].startswith("[audio: ") and state["rendering"].endswith("]")
        assert p.extraction_status["prosody"] == "ok"
        # A plain JSON dict on the wire, decoded back to the same payload.
        wire = msgspec.json.encode(p)
        assert msgspec.json.decode(wire, type=EnrichmentPayload) == p
        assert json.loads(wire)["audio_state"] == state


def test_batch_equals_one_at_a_time() -> None:
    items = conversation()
    batched = Enricher(SETTINGS).enrich_batch(items)
    single = Enricher(SETTINGS)
    assert [single.enrich(s, a) for s, a in items] == batched


def test_acoustic_arousal_is_labelled_and_waits_for_the_baseline() -> None:
    payloads = Enricher(SETTINGS).enrich_batch(conversation())
    for i, p in enumerate(payloads):
        emotion = p.audio_state["emotion"]
        assert emotion["source"] == "acoustic"
        assert "model" not in emotion  # never looks like a model output
        assert emotion["valence"] is None and emotion["dominance"] is None
        assert emotion["categorical"] is None
        assert "no emotion model" in emotion["reason"]
        assert p.extraction_status["emotion"] == "skipped"
        if i < SETTINGS.baseline_min_segments:
            assert emotion["arousal"] is None
            assert "baseline" in emotion["arousal_reason"]
            assert p.audio_state["prosody"]["relative"] is None
            assert p.audio_state["prosody"]["relative_reason"]
            assert p.extraction_status["acoustic_arousal"] == "skipped"
            assert p.extraction_status["relative"] == "skipped"
        else:
            assert 0.0 <= emotion["arousal"]["score"] <= 1.0
            assert p.extraction_status["acoustic_arousal"] == "ok"
            assert p.extraction_status["relative"] == "ok"
    by_id = {p.segment_id: p.audio_state["emotion"]["arousal"] for p in payloads}
    # The loud delivery of a sentence is more aroused than the quiet one, for this speaker.
    assert by_id["loud-0"]["score"] > by_id["quiet-0"]["score"]
    assert (
        "(acoustic)"
        in next(p for p in payloads if p.segment_id == "quiet-0").audio_state["rendering"]
    )


def test_failing_prosody_fails_only_prosody(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("tracker exploded")

    monkeypatch.setattr(core, "extract_prosody", broken)
    model = EmotionModel(str(save_classifier(tmp_path / "cat")))
    payloads = Enricher(SETTINGS, emotion=model).enrich_batch(conversation()[:2])
    for p in payloads:
        assert p.extraction_status["prosody"] == "failed: RuntimeError: tracker exploded"
        assert p.audio_state["prosody"] is None
        assert p.extraction_status["emotion"] == "ok"
        assert p.audio_state["emotion"]["categorical"]["primary"]
        assert p.audio_state["rendering"].startswith("[audio: ")


def test_failing_emotion_model_fails_only_emotion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = EmotionModel(str(save_classifier(tmp_path / "cat")))

    def broken(self: EmotionModel, audios: Any) -> list[dict[str, Any]]:
        raise MemoryError("CUDA out of memory")

    monkeypatch.setattr(EmotionModel, "predict", broken)
    payloads = Enricher(SETTINGS, emotion=model).enrich_batch(conversation()[:4])
    for p in payloads:
        assert p.extraction_status["emotion"] == "failed: MemoryError: CUDA out of memory"
        assert p.audio_state["emotion"]["source"] == "model"
        assert p.audio_state["emotion"]["arousal"] is None
        assert p.audio_state["emotion"]["categorical"] is None
        assert p.extraction_status["prosody"] == "ok"
        assert p.audio_state["prosody"]["pitch"]["mean_hz"] is not None


def test_a_refused_checkpoint_is_a_failed_status_not_a_crash(tmp_path: Path) -> None:
    path = save_classifier(tmp_path / "bad")
    (path / "model.safetensors").unlink()
    settings = dataclasses.replace(SETTINGS, emotion_model=str(path))
    payload = Enricher(settings).enrich(*conversation()[0])
    assert payload.extraction_status["emotion"].startswith(
        "failed: EmotionModelError: no model weights"
    )
    assert payload.extraction_status["prosody"] == "ok"


def test_dimensional_model_output_replaces_the_acoustic_estimate(tmp_path: Path) -> None:
    path = save_regressor(tmp_path / "dim", ["arousal", "dominance", "valence"])
    settings = dataclasses.replace(SETTINGS, emotion_model=str(path), emotion_batch_size=3)
    payloads = Enricher(settings).enrich_batch(conversation())
    for p in payloads:
        emotion = p.audio_state["emotion"]
        assert emotion["source"] == "model" and emotion["model"] == "dim"
        assert emotion["head"] == "regression" and emotion["device"] == "cpu"
        assert 0.0 <= emotion["valence"]["score"] <= 1.0
        assert p.extraction_status["emotion"] == "ok"
        assert p.extraction_status["acoustic_arousal"] == "skipped"
        assert "(acoustic)" not in p.audio_state["rendering"]


def test_state_round_trip_continues_baselines() -> None:
    items = conversation()
    uninterrupted = Enricher(SETTINGS).enrich_batch(items)
    first = Enricher(SETTINGS)
    head = first.enrich_batch(items[:4])
    state = json.loads(json.dumps(first.state()))  # through the checkpoint's JSON
    tail = Enricher(SETTINGS, state=state).enrich_batch(items[4:])
    assert head + tail == uninterrupted
    with pytest.raises(ValueError, match="version"):
        Enricher(SETTINGS, state={"version": 0})


def test_speaker_key_defaults_and_speakers_are_separate() -> None:
    enricher = Enricher(SETTINGS)
    low = [item for i in (1, 2, 3) for item in fixture_segments(f"voice_low_{i}", None)]
    high = [item for i in (1, 2, 3) for item in fixture_segments(f"voice_high_{i}", "spk_1")]
    payloads = enricher.enrich_batch([x for pair in zip(low, high, strict=True) for x in pair])
    assert {p.audio_state["speaker_id"] for p in payloads} == {"spk_0", "spk_1"}
    speakers = enricher.state()["baselines"]["speakers"]
    assert speakers["spk_0"]["segments"] == speakers["spk_1"]["segments"] == 3
    # Six segments in, but each speaker has only three: no relative levels yet.
    assert all(p.audio_state["prosody"]["relative"] is None for p in payloads)


def test_rendering_names_only_what_stands_out() -> None:
    assert render(None, None) == "[audio: neutral]"
    plain = {
        "pitch": {"level": "neutral"},
        "energy": {"level": "normal"},
        "rate": {"level": "normal"},
    }
    assert render({**plain, "relative": None}, None) == "[audio: neutral]"
    salient = {"pitch": {"level": "high"}, "energy": {"level": "loud"}, "rate": {"level": "fast"}}
    assert render({**salient, "relative": None}, None) == "[audio: high pitch, loud, fast]"
    # With a baseline, pitch is named only when it departs from the speaker's own.
    relative = {"pitch_hz": {"level": "typical"}, "syllables_per_s": {"level": "much_higher"}}
    assert (
        render({**salient, "relative": relative}, None)
        == "[audio: loud, fast, much faster than usual]"
    )
    acoustic = {"source": "acoustic", "arousal": {"level": "high"}}
    assert render(None, acoustic) == "[audio: high arousal (acoustic)]"
    model = {"source": "model", "arousal": {"level": "neutral"}, "valence": {"level": "low"},
             "categorical": {"primary": "Sad", "confidence": 0.7}}  # fmt: skip
    assert render(None, model) == "[audio: negative, sad]"


def test_settings_are_flat_scalars_for_env_building() -> None:
    for field in dataclasses.fields(EnrichSettings):
        assert field.type in ("str", "int", "float", "bool"), field.name


def test_warm_without_and_with_a_model(tmp_path: Path) -> None:
    assert warm(SETTINGS) is None
    path = save_classifier(tmp_path / "cat")
    model = warm(dataclasses.replace(SETTINGS, emotion_model=str(path)))
    assert model is not None and model.device == "cpu"
    # The warmed model is shared: an Enricher given it does not load another one.
    enricher = Enricher(SETTINGS, emotion=model)
    assert enricher.emotion is model
    assert enricher.enrich(*conversation()[0]).extraction_status["emotion"] == "ok"
