"""The semantic stage's I/O shell: final segments from the event stream in, turns out.

Follows the session's `segment_finalized` (and `partial_segment`, for how far audio
has got) events through `shared.event_stage.follow_session`; the core's outputs go out
with the checkpoint `{"seq", "state": {"core", "progress"}}` atomically with the last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog

from services.semantic.core import STAGE, SemanticCore
from services.semantic.embeddings import EmbeddingKeywords, EmbeddingModel
from services.semantic.settings import SemanticSettings
from shared.event_cursor import FollowedEvent
from shared.event_stage import follow_session
from shared.schemas import Event, PartialSegment, SegmentFinalized
from shared.settings import Settings
from shared.worker import SessionLease

log = structlog.get_logger("streamscribe.semantic")

FOLLOWED_TYPES = frozenset({"segment_finalized", "partial_segment"})
# The stages whose events this one builds on.
UPSTREAM = ("asr",)


class _Session:
    """One session's core plus how far each speaker track's audio has been decoded."""

    def __init__(
        self, core: SemanticCore, progress: Mapping[str, float], *, in_thread: bool = False
    ) -> None:
        self.core = core
        self.in_thread = in_thread
        # Per track (speaker), the start of its newest partial: audio before it on that
        # track has been heard. The clock may pass a quiet turn's gap only once every
        # track seen has got that far, so a final still being decoded on another track
        # cannot land after its turn was closed.
        self.progress = dict(progress)

    async def on_batch(self, batch: list[FollowedEvent]) -> list[Event]:
        if self.in_thread:
            # A final turn runs the embedding model: off the event loop, so lease
            # renewal and health keep going. One batch at a time per session (awaited).
            return await asyncio.to_thread(self._apply, batch)
        return self._apply(batch)

    def _apply(self, batch: list[FollowedEvent]) -> list[Event]:
        events: list[Event] = []
        for followed in batch:
            event = followed.event
            if isinstance(event, SegmentFinalized):
                outputs = self.core.on_final(event.payload)
                self._heard(event.payload.speaker_id, event.payload.end)
            elif isinstance(event, PartialSegment):
                self._heard(event.payload.speaker_id, event.payload.start)
                outputs = self.core.advance(min(self.progress.values()))
            else:
                continue
            events.extend(out.event for out in outputs)
        return events

    def _heard(self, speaker: str | None, until: float) -> None:
        key = speaker or "spk_0"
        self.progress[key] = max(self.progress.get(key, 0.0), until)

    async def finish(self) -> list[Event]:
        if self.in_thread:
            outputs = await asyncio.to_thread(self.core.finish)
        else:
            outputs = self.core.finish()
        return [out.event for out in outputs]

    def state(self) -> dict[str, Any]:
        return {"core": self.core.state(), "progress": self.progress}

    def resume_id(self) -> str | None:
        return None


class SemanticHandler:
    """`shared.worker.StageHandler` for semantic."""

    stage = STAGE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.semantic = settings.stage(STAGE, SemanticSettings)
        self.ranker: EmbeddingKeywords | None = None
        if not self.semantic.embeddings:
            # Refuses what the core cannot do at start, not per session.
            SemanticCore(self.semantic, "probe")

    async def prepare(self) -> None:
        if not self.semantic.embeddings:
            return
        # A missing or broken model stops the worker here (EmbeddingModelError), before
        # it is ready; it never falls back to lexical keywords.
        model = await asyncio.to_thread(EmbeddingModel, self.semantic.embedding_model)
        await asyncio.to_thread(model.warm)
        self.ranker = EmbeddingKeywords(model)
        SemanticCore(self.semantic, "probe", ranker=self.ranker)
        log.info("semantic_ready", keywords=self.ranker.annotator, model_dir=str(model.path))

    async def run_session(self, lease: SessionLease) -> None:
        async def make(lease: SessionLease, checkpoint: Mapping[str, Any]) -> _Session:
            saved = checkpoint.get("state") or {}
            core = SemanticCore(
                self.semantic, lease.session_id, saved.get("core"), ranker=self.ranker
            )
            return _Session(core, saved.get("progress", {}), in_thread=self.ranker is not None)

        await follow_session(
            lease,
            types=FOLLOWED_TYPES,
            upstream=UPSTREAM,
            pipeline=self.settings.pipeline,
            make_processor=make,
            block_ms=self.settings.bus.block_ms,
        )
