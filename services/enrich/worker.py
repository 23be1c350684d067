"""The enrich stage's I/O shell: finals from the event stream, their audio from the log.

For each `segment_finalized` with text, reads exactly that segment's samples (its own
track in a channels-as-speakers session) and publishes one `segment_enriched` (id
`enriched:<segment id>`, payload.segment_id the segment's id) through
`shared.event_stage.follow_session`: the checkpoint carries the speaker baselines and
the audio log position still needed (`resume_id`), so a takeover continues both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog

from services.enrich.audio import AudioUnavailable, AudioWindow
from services.enrich.core import Enricher, failed, warm
from services.enrich.metrics import BATCH_SECONDS, SEGMENTS_ENRICHED
from services.enrich.settings import STAGE, EnrichSettings
from shared import stages
from shared.event_cursor import FollowedEvent
from shared.event_stage import follow_session
from shared.schemas import EnrichmentPayload, Event, Segment, SegmentEnriched, SegmentFinalized
from shared.settings import Settings
from shared.worker import SessionLease

if TYPE_CHECKING:
    from services.enrich.emotion import EmotionModel

log = structlog.get_logger("streamscribe.enrich")

FOLLOWED_TYPES = frozenset({"segment_finalized"})
UPSTREAM = ("asr",)
# Finals read per batch: one emotion-model call covers them.
BATCH_SIZE = 16


def enriched_id(segment_id: str) -> str:
    """The event id of a segment's enrichment (the segment's own id is closed by its final)."""
    return f"enriched:{segment_id}"


class _Session:
    def __init__(
        self,
        lease: SessionLease,
        enricher: Enricher,
        audio: AudioWindow,
        enriched: int,
        audio_readers: tuple[str, ...],
    ) -> None:
        self.lease = lease
        self.session_id = lease.session_id
        self.audio_readers = audio_readers
        self.enricher = enricher
        self.audio = audio
        self.enriched = enriched

    async def on_batch(self, batch: list[FollowedEvent]) -> list[Event]:
        # The previous batch's checkpoint is saved by now: release what it moved past.
        await self.lease.release_audio(self.audio_readers)
        started = time.perf_counter()
        finals = [
            f.event.payload
            for f in batch
            if isinstance(f.event, SegmentFinalized) and f.event.payload.text.strip()
        ]
        ready: list[tuple[Segment, Any]] = []
        missing: dict[str, EnrichmentPayload] = {}
        for seg in finals:
            try:
                audio = await self.audio.segment(seg.channel or 0, seg.start, seg.end)
            except AudioUnavailable as exc:
                log.warning("enrich_audio_missing", session_id=self.session_id, error=str(exc))
                missing[seg.id] = _no_audio(seg, exc)
                continue
            ready.append((seg, audio))
        payloads = await asyncio.to_thread(self.enricher.enrich_batch, ready) if ready else []
        by_id = {p.segment_id: p for p in payloads} | missing
        for seg in finals:
            self.audio.release(seg.channel or 0, seg.end)
        self.enriched += len(finals)
        SEGMENTS_ENRICHED.inc(len(finals))
        BATCH_SECONDS.observe(time.perf_counter() - started)
        return [
            SegmentEnriched(
                session_id=self.session_id,
                id=enriched_id(seg.id),
                stage=STAGE,
                payload=by_id[seg.id],
            )
            for seg in finals
        ]

    async def finish(self) -> list[Event]:
        await self.audio.finish()
        return []

    def state(self) -> dict[str, Any]:
        return {"core": self.enricher.state(), "enriched": self.enriched}

    def resume_id(self) -> str | None:
        return self.audio.resume_id()


def _no_audio(seg: Segment, exc: Exception) -> EnrichmentPayload:
    status = failed(exc)
    return EnrichmentPayload(
        segment_id=seg.id,
        audio_state={"prosody": None, "emotion": None, "rendering": None},
        extraction_status={"prosody": status, "emotion": status},
    )


class EnrichHandler:
    """`shared.worker.StageHandler` for enrich."""

    stage = STAGE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.enrich = settings.stage(STAGE, EnrichSettings)
        self.emotion: EmotionModel | None = None
        self.audio_readers = (
            stages.audio_readers(settings.pipeline) if settings.bus.trim_audio else ()
        )

    async def prepare(self) -> None:
        # Every lazy import and FFT plan (and the emotion model, if configured) is paid
        # here, so the first real segment is as fast as the rest.
        self.emotion = await asyncio.to_thread(warm, self.enrich)
        log.info(
            "enrich_ready",
            emotion_model=self.enrich.emotion_model or None,
            emotion="model" if self.emotion is not None else "acoustic arousal only",
        )

    async def run_session(self, lease: SessionLease) -> None:
        async def make(lease: SessionLease, checkpoint: Mapping[str, Any]) -> _Session:
            saved = checkpoint.get("state") or {}
            enricher = Enricher(self.enrich, saved.get("core"), emotion=self.emotion)
            audio = AudioWindow(
                lease.bus,
                lease.session_id,
                checkpoint.get("resume_id"),
                self.settings.bus.block_ms,
            )
            enriched = int(saved.get("enriched", 0))
            return _Session(lease, enricher, audio, enriched, self.audio_readers)

        await follow_session(
            lease,
            types=FOLLOWED_TYPES,
            upstream=UPSTREAM,
            pipeline=self.settings.pipeline,
            make_processor=make,
            block_ms=self.settings.bus.block_ms,
            batch_size=BATCH_SIZE,
        )
        await lease.release_audio(self.audio_readers)
