"""The asr stage's I/O shell: audio log in, partial and final segments out, via the worker loop."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from services.asr.decoder import WhisperDecoder
from services.asr.hypothesis import Hypothesis
from services.asr.metrics import DECODE_SECONDS, FINAL_LAG_SECONDS
from services.asr.scheduler import FINAL_PRIORITY, PARTIAL_PRIORITY, DecodeScheduler
from services.asr.settings import STAGE, AsrSettings
from services.asr.tracker import DecodeRequest, Lane, Output, SessionTracker
from shared import keys, stages
from shared.audio_log import from_fields
from shared.bus import StreamEntry, xrange, xread
from shared.protocol import WORKING_SAMPLE_RATE
from shared.schemas import (
    PartialSegment,
    SegmentFinalized,
    SessionConfig,
    VadMark,
)
from shared.settings import Settings
from shared.worker import SessionLease

log = structlog.get_logger("streamscribe.asr")
_READ_COUNT = 256


class AsrHandler:
    """Streaming faster-whisper for every session this worker owns."""

    stage = STAGE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.asr = settings.stage(STAGE, AsrSettings)
        self.decoder: WhisperDecoder | None = None
        # Sized by the decoder's replicas once the model is loaded (prepare).
        self.scheduler = DecodeScheduler()
        self.audio_readers = (
            stages.audio_readers(settings.pipeline) if settings.bus.trim_audio else ()
        )

    async def prepare(self) -> None:
        self.decoder = await asyncio.to_thread(WhisperDecoder, self.asr)
        self.scheduler = DecodeScheduler(self.decoder.slots)
        log.info(
            "asr_model_loaded",
            model=self.asr.model,
            device=self.decoder.device,
            compute_type=self.decoder.compute_type,
            decode_slots=self.scheduler.slots,
            encoder_threads=self.decoder.threads,
            partial_nice=self.asr.partial_nice,
        )
        if self.decoder.priority_warning:
            log.warning("asr_partial_priority", detail=self.decoder.priority_warning)

    async def run_session(self, lease: SessionLease) -> None:
        assert self.decoder is not None, "prepare() loads the model first"
        checkpoint = await lease.load_checkpoint()
        config, speech_pad_ms = await self._session_config(lease)
        language = config.language or ("en" if self.decoder.english_only else None)
        tracker = SessionTracker(
            lease.session_id,
            partial_interval_s=self.asr.partial_interval_s,
            max_utterance_s=self.asr.max_utterance_s,
            prompt_chars=self.asr.prompt_chars,
            channels_as_speakers=config.channels_as_speakers,
            speech_pad_s=speech_pad_ms / 1000,
            context_s=self.asr.context_s,
            provenance=self.decoder.provenance(language, 0),
            partial_beam_size=self.asr.partial_beam_size,
            checkpoint=checkpoint,
        )
        for channel, track in tracker.tracks.items():
            if track.utt_start is not None:
                head = await lease.bus.head_revision(lease.session_id, track.seg_id)
                tracker.set_revision_floor(channel, head)
        wake = asyncio.Event()
        # This session's (channel, end position) -> when its VAD end mark was read, for
        # the final-lag metric. Per session: the handler serves many sessions at once.
        end_seen: dict[tuple[int, int], float] = {}
        reader = asyncio.create_task(self._read_audio(lease, tracker, wake, end_seen))
        try:
            await self._decode_loop(lease, tracker, wake, reader, language, end_seen)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await lease.save_checkpoint(tracker.checkpoint())
        await lease.release_audio(self.audio_readers)

    async def _decode_loop(
        self,
        lease: SessionLease,
        tracker: SessionTracker,
        wake: asyncio.Event,
        reader: asyncio.Task[None],
        language: str | None,
        end_seen: dict[tuple[int, int], float],
    ) -> None:
        """Publish what the tracker produced and start the decodes it claims, until finished.

        A session may have several decodes in flight (one final-quality and one partial
        per track); each runs as its own task once the scheduler grants it a slot.
        """
        decodes: set[asyncio.Task[None]] = set()
        try:
            while True:
                wake.clear()  # before looking: a decode finishing meanwhile sets it again
                for task in [d for d in decodes if d.done()]:
                    decodes.discard(task)
                    task.result()  # a failed decode fails the session
                await self._publish(lease, tracker, tracker.take_outputs(), end_seen)
                if tracker.finished:
                    return  # what is left only waits for a slot; `finally` drops it
                if reader.done() and reader.exception() is not None:
                    raise reader.exception()  # type: ignore[misc]
                while (claimed := tracker.claim()) is not None:
                    job = self._decode_claimed(tracker, claimed, language, wake)
                    decodes.add(asyncio.create_task(job))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=1.0)
        finally:
            for task in decodes:
                task.cancel()
            await asyncio.gather(*decodes, return_exceptions=True)

    async def _decode_claimed(
        self,
        tracker: SessionTracker,
        claimed: tuple[int, Lane],
        language: str | None,
        wake: asyncio.Event,
    ) -> None:
        """Wait for a decode slot, build the request from the newest audio, decode, hand back."""
        try:
            priority = FINAL_PRIORITY if claimed[1] == "quality" else PARTIAL_PRIORITY
            async with self.scheduler.slot(priority):
                request = tracker.request_for(*claimed)
                if request is None:
                    return
                started = time.perf_counter()
                hyp = await self._decode(request, language)
                tracker.processing_s += time.perf_counter() - started
            log.debug(
                "asr_decoded",
                kind=request.kind,
                seg_id=request.seg_id,
                start=request.start_pos,
                end=request.end_pos,
                audio_s=len(request.audio) / WORKING_SAMPLE_RATE,
                text=hyp.text,
                track_utt=tracker.tracks[request.channel].utt_start,
            )
            tracker.on_result(request, hyp)
        finally:
            wake.set()

    async def _decode(self, request: DecodeRequest, language: str | None) -> Hypothesis:
        assert self.decoder is not None
        started = time.perf_counter()
        hyp = await asyncio.to_thread(
            self.decoder.decode,
            request.audio,
            prompt=request.prompt,
            language=language,
            final=request.final_quality,
            context=request.context,
            prefix=request.prefix,
        )
        # The final-quality decode at a pause is a "partial" to the tracker; it costs a
        # final's beam and context, so it gets its own label.
        kind = "pause" if request.kind == "partial" and request.final_quality else request.kind
        DECODE_SECONDS.labels(kind).observe(time.perf_counter() - started)
        if hyp.dropped:
            log.info("asr_segments_dropped", seg_id=request.seg_id, reasons=hyp.dropped)
        return hyp

    async def _publish(
        self,
        lease: SessionLease,
        tracker: SessionTracker,
        outputs: list[Output],
        end_seen: dict[tuple[int, int], float],
    ) -> None:
        for out in outputs:
            seg = out.segment
            if out.final:
                final = SegmentFinalized(
                    session_id=lease.session_id,
                    id=seg.id,
                    revision=seg.revision,
                    stage=self.stage,
                    payload=seg,
                )
                # The checkpoint rides in the same script call: a kill right after this
                # line resumes after the final, never re-cutting or re-emitting it.
                result = await lease.publish_closing(final, checkpoint=out.checkpoint)
                if result.published:
                    await lease.release_audio(self.audio_readers)
                seen = end_seen.pop((out.channel, out.end_pos), None)
                if seen is not None:
                    FINAL_LAG_SECONDS.observe(time.monotonic() - seen)
                continue
            partial = PartialSegment(
                session_id=lease.session_id,
                id=seg.id,
                revision=seg.revision,
                stage=self.stage,
                payload=seg,
            )
            result = await lease.publish(partial)
            if result.reason == "stale":
                # A dead owner got further on this segment; count on from its revision.
                tracker.set_revision_floor(out.channel, result.head_revision)

    async def _read_audio(
        self,
        lease: SessionLease,
        tracker: SessionTracker,
        wake: asyncio.Event,
        end_seen: dict[tuple[int, int], float],
    ) -> None:
        """Feed the tracker from the audio log, from the checkpoint on, until the end mark."""
        redis = lease.bus.redis
        stream = keys.audio(lease.session_id)
        block = self.settings.bus.block_ms
        if tracker.resume_id is not None:
            # Resume inclusively: the checkpoint names the oldest entry still needed.
            entries = await xrange(redis, stream, min=tracker.resume_id, count=_READ_COUNT)
            last = self._feed(tracker, entries, end_seen) or tracker.resume_id
            wake.set()
        else:
            last = "0-0"
        while tracker.ended_at is None:
            for _stream, entries in await xread(
                redis, {stream: last}, count=_READ_COUNT, block=block
            ):
                last = self._feed(tracker, entries, end_seen) or last
                wake.set()
        wake.set()

    @staticmethod
    def _feed(
        tracker: SessionTracker,
        entries: list[StreamEntry],
        end_seen: dict[tuple[int, int], float],
    ) -> str | None:
        last = None
        for entry_id, fields in entries:
            last = entry_id.decode()
            entry = from_fields(fields)
            if isinstance(entry, VadMark) and entry.state == "end":
                end_seen[(entry.channel, entry.pos)] = time.monotonic()
            tracker.feed(last, entry)
        return last

    async def _session_config(self, lease: SessionLease) -> tuple[SessionConfig, int]:
        """The config ingest acknowledged in `ready` and its speech pad; defaults if ingest
        rejected the start."""
        pad_ms = self.asr.speech_pad_ms
        while True:
            ready = await lease.bus.ready_event(lease.session_id)
            if ready is not None:
                payload = ready.payload
                pad = payload.vad_speech_pad_ms
                return payload.config, pad_ms if pad is None else pad
            # Ingest publishes `ready` before it writes any audio, so once audio exists
            # and there is still no `ready`, the start was rejected.
            if await lease.bus.redis.xlen(keys.audio(lease.session_id)):
                return SessionConfig(), pad_ms
            await asyncio.sleep(self.settings.bus.block_ms / 1000)
