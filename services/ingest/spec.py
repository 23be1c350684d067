"""The ingest stage's plug-in spec (entry point `streamscribe.stages: ingest`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from services.ingest.metrics import FRAMES_INGESTED
from services.ingest.settings import STAGE, IngestSettings
from shared.stages import StageSpec, require_modules

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.worker import StageHandler


def _make_handler(settings: Settings) -> StageHandler:
    require_modules(STAGE, STAGE, ("onnxruntime", "silero_vad"))
    from services.ingest.worker import IngestHandler  # loads the model runtime: only when run

    return IngestHandler(settings)


def summary(checkpoint: Mapping[str, Any] | None) -> dict[str, Any]:
    """`duration_s` of the audio written and the time spent processing frames."""
    summary = (checkpoint or {}).get("summary") or {}
    return {
        "duration_s": float(summary.get("duration_s", 0.0)),
        "processing_s": float(summary.get("processing_s", 0.0)),
    }


SPEC = StageSpec(
    name=STAGE,
    settings_type=IngestSettings,
    make_handler=_make_handler,
    metrics=(FRAMES_INGESTED,),
    summary=summary,
)
