"""The semantic stage's plug-in spec (entry point `streamscribe.stages: semantic`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from services.semantic.core import STAGE
from services.semantic.settings import SemanticSettings
from shared.stages import StageSpec

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.worker import StageHandler


def _make_handler(settings: Settings) -> StageHandler:
    from services.semantic.worker import SemanticHandler

    return SemanticHandler(settings)


def summary(checkpoint: Mapping[str, Any] | None) -> dict[str, Any]:
    """The turns the session had, and the time spent on them."""
    core = ((checkpoint or {}).get("state") or {}).get("core") or {}
    analytics = core.get("analytics") or {}
    return {
        "turns": int(analytics.get("turn_count", 0)),
        "processing_s": float(((checkpoint or {}).get("summary") or {}).get("processing_s", 0.0)),
    }


SPEC = StageSpec(
    name=STAGE,
    settings_type=SemanticSettings,
    make_handler=_make_handler,
    upstream=("asr",),
    summary=summary,
)
