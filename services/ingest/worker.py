"""The ingest stage's I/O shell: inbox reads, event publishing, atomic log + checkpoint commits.

Checkpoint (`HSET ss:{sid}:ckpt ingest <json>`, written by the same script call as the
audio log entries it accounts for, shared/commit_audio.lua):

    {"version": 1, "commit": 7,                 # commit: fencing counter, +1 per commit
     "last_id": "1712-3",                       # last inbox entry handled (XREAD from it)
     "ended": false,                            # EndMark written; nothing left to do
     "config": {...SessionConfig...} | null,    # acknowledged config (null before start)
     "expected_seq": 42,                        # next seq the reorder window waits for
     "buffered": [[44, "1712-5", true], ...],   # [seq, inbox id, has bytes]; refetched
     "tracks": [{"channel": 0, "pos": 16000,    # samples of the track in the log
                 "vad": {"phase": "speech", "pos": ..., "candidate_start": ...,
                         "last_speech_end": ..., "paused": false,
                         "silence_since": null, "last_end": ...}}],
     "errors": {"duplicate_seq": 2},            # error counts per code
     "frames": 41,                              # frames decoded into the log
     "summary": {"duration_s": 1.0}}            # read by the worker loop for `done`
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog

from services.ingest.core import ErrorNotice, IngestSession, StepOutput
from services.ingest.metrics import FRAMES_INGESTED
from services.ingest.settings import STAGE, IngestSettings
from services.ingest.vad import SileroModel
from shared import keys
from shared.audio_log import to_fields
from shared.settings import Settings
from shared.worker import SessionLease

log = structlog.get_logger("streamscribe.ingest")

# Entries per XREAD: enough to catch up after a stall, small enough to commit often.
READ_COUNT = 16


class _Fenced(Exception):
    """Another owner committed after our last commit: our in-memory state is stale."""


class IngestHandler:
    """`shared.worker.StageHandler` for ingest."""

    stage = STAGE

    def __init__(
        self,
        settings: Settings,
        *,
        no_start_timeout_s: float | None = None,
        model_path: str | Path | None = None,
        model: SileroModel | None = None,
    ) -> None:
        self.settings = settings
        self.ingest = settings.stage(STAGE, IngestSettings)
        self.no_start_timeout_s = (
            self.ingest.no_start_timeout_s if no_start_timeout_s is None else no_start_timeout_s
        )
        self.model_path = model_path
        # An already loaded model may be shared (tests, or several stages in one process).
        self._model = model

    async def prepare(self) -> None:
        """Load the VAD model once; every session shares it."""
        if self._model is None:
            self._model = await asyncio.to_thread(SileroModel, self.model_path)
            log.info("vad_model_loaded", path=str(self._model.path))

    async def run_session(self, lease: SessionLease) -> None:
        """Read the inbox from the checkpoint until stop or a fatal error."""
        while True:
            try:
                await self._run(lease)
                return
            except _Fenced:
                # Either we are a zombie about to lose the lease (the renewer cancels us)
                # or a zombie wrote after us; either way the checkpoint is the truth.
                log.warning("ingest_fenced", session_id=lease.session_id)

    async def _run(self, lease: SessionLease) -> None:
        sid = lease.session_id
        redis = lease.bus.redis
        session, commit = await self._restore(lease)
        slog = log.bind(session_id=sid)
        if session.ended:
            return
        slog.info("ingest_session", resumed=commit > 0, last_id=session.last_entry_id)
        # The registry entry id's time, on the Redis clock: a takeover does not reset it.
        deadline_ms = _registered_ms(lease.entry_id) + int(self.no_start_timeout_s * 1000)
        inbox = keys.inbox(sid)
        heard_at = time.monotonic()  # when this worker last read anything of the producer
        while not session.ended:
            # redis-py's stub types XREAD's reply loosely; it is [[stream, [(id, fields)]]].
            response: Any = await redis.xread(
                {inbox: session.last_entry_id},
                count=READ_COUNT,
                block=self.settings.bus.block_ms,
            )
            entries: list[tuple[bytes, dict[bytes, bytes]]] = [
                entry for _stream, batch in response or [] for entry in batch
            ]
            if entries:
                heard_at = time.monotonic()
                try:
                    started = time.perf_counter()
                    out = await asyncio.to_thread(session.handle_batch, entries)
                    session.processing_s += time.perf_counter() - started
                except Exception as exc:
                    # Not Redis (handle_batch does no I/O): a bug on this input would fail
                    # the same way on every retry, so end the session from the last commit.
                    slog.exception("ingest_batch_failed", last_id=session.last_entry_id)
                    session, commit = await self._restore(lease)
                    out = session.abort(f"{type(exc).__name__}: {exc}")
                commit = await self._commit(lease, session, out, commit)
            # Only time out once caught up: a backlog may still hold the start.
            caught_up = len(entries) < READ_COUNT
            waiting = not session.started and not session.ended and caught_up
            if waiting and await _redis_ms(redis) >= deadline_ms:
                out = session.no_start_timeout(self.no_start_timeout_s)
                commit = await self._commit(lease, session, out, commit)
            idle_limit = self.ingest.producer_idle_timeout_s
            # Only after a read that found nothing: while frames arrive the producer is
            # not idle, and asking Redis for the time was a round trip on every frame.
            watch = session.started and not session.ended and not entries and idle_limit > 0
            if watch and await _producer_idle(redis, session.last_entry_id, heard_at, idle_limit):
                out = session.producer_timeout(idle_limit)
                commit = await self._commit(lease, session, out, commit)
        slog.info("ingest_finished", duration_s=session.duration_s, frames=session.frames)

    async def _restore(self, lease: SessionLease) -> tuple[IngestSession, int]:
        assert self._model is not None, "prepare() loads the model before any session"
        stages = list(self.settings.pipeline)
        checkpoint = await lease.load_checkpoint()
        if checkpoint is None:
            return IngestSession(lease.session_id, self.ingest, self._model, stages), 0
        refetched = await _refetch(lease.bus.redis, lease.session_id, checkpoint)
        session = IngestSession.from_checkpoint(
            checkpoint, lease.session_id, self.ingest, self._model, stages, refetched
        )
        return session, int(checkpoint.get("commit", 0))

    async def _commit(
        self, lease: SessionLease, session: IngestSession, out: StepOutput, commit: int
    ) -> int:
        """Publish the batch's events, then append its log entries and checkpoint atomically.

        Events go first: a crash before the commit replays the batch and republishes them
        under the same ids (dropped as repeats); events published after it could be lost.
        """
        for notice in out.notices:
            if isinstance(notice, ErrorNotice):
                await lease.error(
                    notice.code,
                    notice.message,
                    entity=notice.entity,
                    recoverable=notice.recoverable,
                    **notice.detail,
                )
            else:
                await lease.publish(notice)
        if out.errors_suppressed:
            log.warning(
                "errors_suppressed", session_id=lease.session_id, count=out.errors_suppressed
            )
        state = session.to_checkpoint()
        state["commit"] = commit + 1
        # Only ingest reads the inbox, and this very commit checkpoints past what it
        # trims: drop what is consumed, keep frames the reorder window still holds (they
        # are refetched on resume). The commit lands only on top of ours, which fences a
        # zombie owner.
        committed = await lease.bus.commit_audio(
            lease.session_id,
            STAGE,
            expected_commit=commit,
            checkpoint=state,
            entries=[to_fields(entry) for entry in out.entries],
            inbox_min_id=_oldest_needed(session),
        )
        if not committed:
            raise _Fenced
        if out.frames_accepted and session.config is not None:
            FRAMES_INGESTED.labels(session.config.encoding).inc(out.frames_accepted)
        return commit + 1


async def _refetch(
    redis: aioredis.Redis, session_id: str, checkpoint: Mapping[str, Any]
) -> dict[str, dict[bytes, bytes]]:
    """The inbox fields of frames the checkpointed reorder window still held."""
    inbox = keys.inbox(session_id)
    refetched: dict[str, dict[bytes, bytes]] = {}
    for _seq, entry, has_data in checkpoint.get("buffered", []):
        if has_data:
            rows: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(
                inbox, min=entry, max=entry, count=1
            )  # type: ignore[assignment]
            if rows:
                refetched[str(entry)] = rows[0][1]
    return refetched


def _oldest_needed(session: IngestSession) -> str:
    """The inbox id below which ingest never reads again (XTRIM MINID keeps it)."""
    ids = [session.last_entry_id, *session.buffered_entry_ids()]
    return min(ids, key=lambda i: tuple(int(p) for p in i.split("-")))


async def _producer_idle(
    redis: aioredis.Redis, last_entry_id: str, heard_at: float, idle_limit_s: float
) -> bool:
    """Whether the producer has sent nothing for `idle_limit_s`, by both clocks.

    This worker's own clock since it last read anything: a producer may choose its own
    entry ids (`XADD key 1-0 ...`), whose time says nothing about when it sent them. And
    the Redis clock against the last entry id's time: a worker that took the session
    over (its own clock starts then) or runs with a skewed clock measures the same
    silence. A takeover therefore waits at most one more limit, never less.
    """
    if time.monotonic() - heard_at < idle_limit_s:
        return False
    last_ms = _registered_ms(last_entry_id.encode())
    return await _redis_ms(redis) - last_ms >= idle_limit_s * 1000


def _registered_ms(entry_id: bytes) -> int:
    head = entry_id.split(b"-", 1)[0]
    return int(head) if head.isdigit() else 0


async def _redis_ms(redis: aioredis.Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000
