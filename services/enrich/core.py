"""The enrich stage's pure core: final segments and their audio in, `EnrichmentPayload`s out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from services.enrich.acoustic import acoustic_emotion
from services.enrich.baseline import Baselines
from services.enrich.prosody import SAMPLE_RATE, extract_prosody
from services.enrich.rendering import render
from services.enrich.settings import EnrichSettings
from shared.schemas import EnrichmentPayload, Segment, Word

if TYPE_CHECKING:  # torch and transformers load only when a model is configured
    from services.enrich.emotion import EmotionModel

AudioArray = npt.NDArray[np.floating[Any]]
DEFAULT_SPEAKER = "spk_0"
STATE_VERSION = 1
# Long enough to keep a traceback's point, short enough for an event payload.
_MAX_ERROR_CHARS = 300
_NO_EMOTION: dict[str, Any] = dict.fromkeys(("arousal", "valence", "dominance", "categorical"))


def failed(exc: BaseException) -> str:
    """The `extraction_status` value of a component that raised."""
    return f"failed: {type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]


def emotion_model_from(settings: EnrichSettings) -> EmotionModel | None:
    """The configured model (not loaded yet), or None when `emotion_model` is empty."""
    if not settings.emotion_model:
        return None
    from services.enrich.emotion import EmotionModel

    return EmotionModel(
        settings.emotion_model,
        device=settings.emotion_device,
        batch_size=settings.emotion_batch_size,
        min_seconds=settings.emotion_min_seconds,
    )


class Enricher:
    """Enriches one session's final segments in order, keeping per-speaker baselines.

    `state` is what `state()` returned before (from the stage checkpoint), so a worker
    that takes a session over continues its baselines. `emotion` lets a worker share one
    loaded model between sessions; when None, the model named in the settings (if any) is
    created here and loaded on first use.
    """

    def __init__(
        self,
        settings: EnrichSettings,
        state: dict[str, Any] | None = None,
        emotion: EmotionModel | None = None,
    ) -> None:
        self.settings = settings
        if state and state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown enrich state version {state.get('version')!r}")
        self._baselines = Baselines.from_state(
            (state or {}).get("baselines"), settings.baseline_min_segments
        )
        self.emotion = emotion if emotion is not None else emotion_model_from(settings)

    def state(self) -> dict[str, Any]:
        """JSON-serializable state for the checkpoint: the speaker baselines."""
        return {"version": STATE_VERSION, "baselines": self._baselines.to_state()}

    def enrich(self, segment: Segment, audio: AudioArray) -> EnrichmentPayload:
        """`enrich_batch` of one segment."""
        return self.enrich_batch([(segment, audio)])[0]

    def enrich_batch(self, items: list[tuple[Segment, AudioArray]]) -> list[EnrichmentPayload]:
        """One payload per segment, in order; baselines advance in that order.

        Audio: exactly the segment's samples, 16 kHz mono float in [-1, 1]. The emotion
        model (if any) runs once over the whole batch. A component that raises is
        `failed: ...` in `extraction_status` for its segments; the others still run.

        audio_state = {"prosody": {pitch, energy, rate, pauses, duration_s, relative
        (null + relative_reason while the speaker's baseline warms up)} | null,
        "emotion": {source: "model" | "acoustic", arousal, valence, dominance
        ({score, level} | null), categorical ({primary, confidence, scores} | null), ...},
        "rendering": "[audio: ...]", "speaker_id": ...}; extraction_status has
        prosody, relative, emotion and acoustic_arousal: ok | skipped | failed: <error>.
        """
        emotions, emotion_error = self._run_emotion([audio for _, audio in items])
        payloads = []
        for i, (segment, audio) in enumerate(items):
            status: dict[str, str] = {}
            prosody = self._prosody(segment, audio, status)
            emotion = self._emotion_block(prosody, emotions, emotion_error, i, status)
            audio_state = {
                "prosody": prosody,
                "emotion": emotion,
                "rendering": render(prosody, emotion),
                "speaker_id": segment.speaker_id or DEFAULT_SPEAKER,
            }
            payloads.append(
                EnrichmentPayload(
                    segment_id=segment.id, audio_state=audio_state, extraction_status=status
                )
            )
        return payloads

    def _prosody(
        self, segment: Segment, audio: AudioArray, status: dict[str, str]
    ) -> dict[str, Any] | None:
        try:
            prosody = extract_prosody(audio, segment.words, segment.start, self.settings)
        except Exception as exc:  # any extractor bug degrades to a status, never a crash
            status["prosody"] = failed(exc)
            status["relative"] = "skipped"
            return None
        status["prosody"] = "ok"
        speaker = segment.speaker_id or DEFAULT_SPEAKER
        try:
            relative, reason = self._baselines.score_and_add(speaker, prosody)
        except Exception as exc:
            status["relative"] = failed(exc)
            relative, reason = None, "baseline failed"
        else:
            status["relative"] = "ok" if relative is not None else "skipped"
        prosody["relative"] = relative
        if relative is None:
            prosody["relative_reason"] = reason
        return prosody

    def _run_emotion(
        self, audios: list[AudioArray]
    ) -> tuple[list[dict[str, Any]] | None, str | None]:
        if self.emotion is None or not audios:
            return None, None
        try:
            return self.emotion.predict(audios), None
        except Exception as exc:  # a broken model fails its component, not the batch
            return None, failed(exc)

    def _emotion_block(
        self,
        prosody: dict[str, Any] | None,
        emotions: list[dict[str, Any]] | None,
        emotion_error: str | None,
        index: int,
        status: dict[str, str],
    ) -> dict[str, Any]:
        if self.emotion is not None:
            # With a model, arousal comes from the model only; no acoustic estimate beside it.
            status["acoustic_arousal"] = "skipped"
            block: dict[str, Any] = {"source": "model", **self.emotion.provenance()}
            if emotions is None:
                status["emotion"] = emotion_error or "failed: no output"
                return {**block, **_NO_EMOTION, "error": status["emotion"]}
            status["emotion"] = "ok"
            return {**block, **emotions[index]}
        status["emotion"] = "skipped"
        relative = prosody.get("relative") if prosody else None
        reason = prosody.get("relative_reason") if prosody else "prosody failed"
        try:
            block = acoustic_emotion(relative, reason)
        except Exception as exc:
            status["acoustic_arousal"] = failed(exc)
            return {"source": "acoustic", **_NO_EMOTION, "error": status["acoustic_arousal"]}
        status["acoustic_arousal"] = "ok" if block["arousal"] is not None else "skipped"
        return block


def warm(settings: EnrichSettings) -> EmotionModel | None:
    """Run one synthetic segment through everything (numpy FFT plans, the emotion model's
    load and first inference), so a worker's first real segment is not slow. Returns the
    loaded model (or None) for the worker to pass to every `Enricher`.
    """
    emotion = emotion_model_from(settings)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    audio = (0.1 * np.sin(2 * np.pi * 150.0 * t)).astype(np.float32)
    words = [
        Word(word="warm", start=0.1, end=0.4, probability=1.0),
        Word(word="up", start=0.6, end=0.9, probability=1.0),
    ]
    segment = Segment(id="warm", start=0.0, end=1.0, text="warm up", words=words, partial=False)
    if emotion is not None:
        emotion.warm()  # raises EmotionModelError: a worker should not start with a bad model
    Enricher(settings, emotion=emotion).enrich(segment, audio)
    return emotion
