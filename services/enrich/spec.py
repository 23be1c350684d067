"""The enrich stage's plug-in spec (entry point `streamscribe.stages: enrich`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from services.enrich.metrics import BATCH_SECONDS, SEGMENTS_ENRICHED
from services.enrich.settings import STAGE, EnrichSettings
from shared.stages import StageSpec

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.worker import StageHandler


def _make_handler(settings: Settings) -> StageHandler:
    from services.enrich.worker import EnrichHandler

    return EnrichHandler(settings)


def summary(checkpoint: Mapping[str, Any] | None) -> dict[str, Any]:
    """Segments enriched and the time spent on them."""
    state = (checkpoint or {}).get("state") or {}
    return {
        "segments_enriched": int(state.get("enriched", 0)),
        "processing_s": float(((checkpoint or {}).get("summary") or {}).get("processing_s", 0.0)),
    }


SPEC = StageSpec(
    name=STAGE,
    settings_type=EnrichSettings,
    make_handler=_make_handler,
    reads_audio=True,
    upstream=("asr",),
    metrics=(SEGMENTS_ENRICHED, BATCH_SECONDS),
    summary=summary,
)
