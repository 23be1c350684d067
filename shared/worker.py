"""The one worker loop every stage runs: claim, renew, take over, checkpoint, drain.

A stage supplies a `StageHandler` (pure-ish session logic behind an async
`run_session`); this module owns everything about holding sessions on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from redis.exceptions import RedisError

from shared import keys, metrics, stages
from shared.bus import REDIS_UNAVAILABLE, Bus, PublishResult
from shared.schemas import Done, DonePayload, Error, ErrorPayload, Event, event_type
from shared.settings import Settings

log = structlog.get_logger("streamscribe.worker")

# Transient: the session is resumed from its checkpoint once Redis answers again.
TRANSIENT_ERRORS = REDIS_UNAVAILABLE
_MAX_ATTEMPTS = 3
_HOUSEKEEPING_INTERVAL_S = 60.0


class StageHandler(Protocol):
    """What a stage plugs into the worker loop."""

    stage: str

    async def prepare(self) -> None:
        """Load models and anything slow; the worker is not ready before this returns."""

    async def run_session(self, lease: SessionLease) -> None:
        """Process the session until this stage is finished with it, checkpointing as it goes.

        Must resume from `await lease.load_checkpoint()`; may be cancelled at any await.
        """


@dataclass
class SessionLease:
    """One owned session: publish, checkpoint and finish through it."""

    session_id: str
    entry_id: bytes
    stage: str
    bus: Bus

    async def publish(
        self, event: Event, checkpoint: dict[str, Any] | None = None
    ) -> PublishResult:
        """Publish; with `checkpoint`, this stage's checkpoint is saved atomically with it."""
        result = await self.bus.publish(event, self._ckpt(checkpoint))
        self._count(event, result)
        return result

    async def publish_closing(
        self, event: Event, checkpoint: dict[str, Any] | None = None
    ) -> PublishResult:
        """Publish an event that closes its id (see Bus.publish_closing)."""
        result = await self.bus.publish_closing(event, self._ckpt(checkpoint))
        self._count(event, result)
        return result

    async def publish_batch(
        self, events: Sequence[Event], checkpoint: dict[str, Any]
    ) -> list[PublishResult]:
        """Publish the events one input produced, then save `checkpoint` (the position
        after that input) atomically with the last of them.

        A replay after a crash re-derives the same (id, revision) pairs, which the
        publish script drops; the checkpoint is then saved on its own, as the events
        it accounts for are already in the stream.
        """
        results = [await self.publish(event) for event in events[:-1]]
        if events:
            last = await self.publish(events[-1], checkpoint)
            results.append(last)
            if last.published:
                return results
        await self.save_checkpoint(checkpoint)
        return results

    def _ckpt(self, state: dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
        return None if state is None else (self.stage, state)

    def _count(self, event: Event, result: PublishResult) -> None:
        if result.published:
            metrics.EVENTS_PUBLISHED.labels(self.stage, event_type(event)).inc()
        else:
            metrics.EVENTS_DROPPED.labels(self.stage, result.reason or "?").inc()

    async def error(
        self, code: str, message: str, *, entity: str, recoverable: bool = True, **detail: Any
    ) -> PublishResult:
        """Publish an `error` event; `entity` makes its id deterministic so replays dedupe."""
        metrics.ERRORS_EMITTED.labels(self.stage, code).inc()
        log.warning("session_error", session_id=self.session_id, code=code, detail=message)
        return await self.publish(
            Error(
                session_id=self.session_id,
                id=f"error:{self.stage}:{code}:{entity}",
                stage=self.stage,
                payload=ErrorPayload(
                    code=code,
                    message=message,
                    stage=self.stage,
                    recoverable=recoverable,
                    detail=detail,
                ),
            )
        )

    async def release_audio(self, readers: Sequence[str]) -> None:
        """Trim the audio log below what every stage in `readers` has checkpointed past.

        Best effort: a failed trim only keeps audio longer, so it is logged, not raised.
        """
        if not readers:
            return
        try:
            removed = await self.bus.trim_audio(self.session_id, readers)
        except RedisError as exc:
            log.warning("audio_trim_failed", session_id=self.session_id, error=str(exc))
            return
        if removed:
            metrics.AUDIO_ENTRIES_TRIMMED.labels(self.stage).inc(removed)

    async def load_checkpoint(self) -> dict[str, Any] | None:
        return await self.bus.load_checkpoint(self.session_id, self.stage)

    async def save_checkpoint(self, state: dict[str, Any]) -> None:
        await self.bus.save_checkpoint(self.session_id, self.stage, state)


class Worker:
    """Runs one stage: owns up to `max_sessions_per_worker` sessions at a time."""

    def __init__(self, handler: StageHandler, bus: Bus, settings: Settings) -> None:
        self.handler = handler
        self.bus = bus
        self.settings = settings
        self.stage = handler.stage
        self.name = settings.worker_name
        self.leases: dict[bytes, tuple[SessionLease, asyncio.Task[None]]] = {}
        self.prepared = False
        self.beat = time.monotonic()
        self._pending_acks: list[bytes] = []
        self._housekeeping_at = 0.0
        self._log = log.bind(stage=self.stage, worker=self.name)

    # --- probes -------------------------------------------------------------------------

    async def live(self) -> bool:
        slack = 3 * max(self.settings.bus.block_ms, self.settings.bus.renew_interval_ms) / 1000
        return time.monotonic() - self.beat < slack + 5

    async def ready(self) -> bool:
        if not self.prepared:
            return False
        try:
            return bool(await self.bus.redis.ping())
        except TRANSIENT_ERRORS:
            return False

    # --- main loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and work sessions until `stop` is set, then drain."""
        await self.handler.prepare()
        self.prepared = True
        renewer = asyncio.create_task(self._renew_loop(stop))
        self._log.info("worker_started")
        try:
            while not stop.is_set():
                self.beat = time.monotonic()
                try:
                    await self._ensure_group()
                    await self._claim_some(stop)
                    await self._housekeeping()
                except TRANSIENT_ERRORS as exc:
                    self._log.warning("redis_unavailable", error=str(exc))
                    await _sleep_or_stop(stop, 1.0)
                self._reap_finished()
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await self._drain()
            self._log.info("worker_stopped")

    _group_ready = False

    async def _ensure_group(self) -> None:
        if not self._group_ready:
            await self.bus.ensure_group(self.stage)
            self._group_ready = True

    async def _ack_rejected(self) -> None:
        while self._pending_acks:
            await self.bus.ack(self.stage, self._pending_acks[0])
            self._pending_acks.pop(0)

    async def _claim_some(self, stop: asyncio.Event) -> None:
        await self._ack_rejected()
        free = self.settings.bus.max_sessions_per_worker - len(self.leases)
        if free <= 0:
            await _sleep_or_stop(stop, self.settings.bus.block_ms / 1000)
            return
        # Dead owners first: an entry idle past min-idle belongs to nobody alive.
        claimed = await self.bus.claim_idle(
            self.stage, self.name, min_idle_ms=self.settings.bus.claim_min_idle_ms, count=free
        )
        for entry_id, fields in claimed:
            if fields:
                self._start(entry_id, fields, takeover=True)
        free = self.settings.bus.max_sessions_per_worker - len(self.leases)
        if free <= 0 or stop.is_set():
            return
        fresh = await self.bus.claim_new(
            self.stage, self.name, count=free, block_ms=self.settings.bus.block_ms
        )
        for entry_id, fields in fresh:
            self._start(entry_id, fields, takeover=False)

    async def _housekeeping(self) -> None:
        """At most once a minute: forget consumer names of workers that are gone (XINFO
        CONSUMERS stays short) and trim registry entries every stage is done with."""
        if time.monotonic() - self._housekeeping_at < _HOUSEKEEPING_INTERVAL_S:
            return
        self._housekeeping_at = time.monotonic()
        removed = await self.bus.prune_consumers(
            self.stage, self.settings.bus.prune_consumers_idle_ms
        )
        if removed:
            self._log.info("consumers_pruned", consumers=removed)
        trimmed = await self.bus.trim_registry(self.settings.pipeline)
        if trimmed:
            metrics.REGISTRY_ENTRIES_TRIMMED.labels(self.stage).inc(trimmed)

    def _start(self, entry_id: bytes, fields: dict[bytes, bytes], *, takeover: bool) -> None:
        if entry_id in self.leases:
            return
        session_id = fields.get(b"session_id", b"").decode(errors="replace")
        try:
            keys.check_session_id(session_id)
        except keys.InvalidSessionId as exc:
            # Nothing can be published for such a session (no valid key); left pending it
            # would be claimed again every min-idle forever, so drop it with a log line.
            self._log.error("registry_entry_rejected", entry_id=entry_id, error=str(exc))
            self._pending_acks.append(entry_id)
            return
        lease = SessionLease(
            session_id=session_id, entry_id=entry_id, stage=self.stage, bus=self.bus
        )
        metrics.SESSIONS_CLAIMED.labels(self.stage, "takeover" if takeover else "new").inc()
        self._log.info("session_claimed", session_id=session_id, takeover=takeover)
        task = asyncio.create_task(self._run_lease(lease), name=f"{self.stage}:{session_id}")
        self.leases[entry_id] = (lease, task)
        metrics.SESSIONS_ACTIVE.labels(self.stage).set(len(self.leases))

    def _reap_finished(self) -> None:
        for entry_id, (_lease, task) in list(self.leases.items()):
            if task.done():
                del self.leases[entry_id]
        metrics.SESSIONS_ACTIVE.labels(self.stage).set(len(self.leases))

    async def _run_lease(self, lease: SessionLease) -> None:
        slog = self._log.bind(session_id=lease.session_id)
        attempts = 0
        while True:
            try:
                if not await self.bus.claim_registration(lease.session_id, lease.entry_id):
                    # A second registry entry of a registered session: skip it.
                    await self.bus.ack(self.stage, lease.entry_id)
                    slog.warning("duplicate_registration", entry_id=lease.entry_id)
                    return
                await self._run_once(lease)
                await self.bus.ack(self.stage, lease.entry_id)
                slog.info("session_released", reason="finished")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # redis-py's asyncio connection can also lose its writer to a concurrent
                # disconnect while a node is down (AttributeError on `_writer`, seen in
                # the cluster node-kill test): an outage too, not the stage's failure.
                if isinstance(exc, TRANSIENT_ERRORS) or raised_in_redis_client(exc):
                    slog.warning("session_interrupted", error=f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(1.0)
                    continue
                attempts += 1
                metrics.SESSIONS_FAILED.labels(self.stage, type(exc).__name__).inc()
                slog.exception("session_failed", attempt=attempts)
                give_up = attempts >= _MAX_ATTEMPTS
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    await lease.error(
                        "internal",
                        f"{self.stage} failed: {type(exc).__name__}: {exc}",
                        entity=f"attempt{attempts}",
                        recoverable=not give_up,
                    )
                    if give_up:
                        await self._finish(lease, reason="failed")
                        await self.bus.ack(self.stage, lease.entry_id)
                        return
                await asyncio.sleep(1.0)

    async def _run_once(self, lease: SessionLease) -> None:
        if self.stage not in await self.bus.finished_stages(lease.session_id):
            started = time.monotonic()
            await self.handler.run_session(lease)
            self._log.debug(
                "session_processed",
                session_id=lease.session_id,
                seconds=round(time.monotonic() - started, 3),
            )
        # Also after a takeover of a finished session: its owner may have died before
        # `done` was published.
        await self._finish(lease, reason="stopped")

    async def _finish(self, lease: SessionLease, *, reason: str) -> None:
        """Mark this stage finished; once every stage of the pipeline is, publish `done`.

        When stages before this one in the pipeline are unfinished (their workers are
        down), this one waits up to `done_timeout_s` for them and then publishes `done`
        naming them, so `done` comes even without them. Unfinished stages after this one
        will finish later and publish it themselves.
        """
        sid = lease.session_id
        pipeline = list(self.settings.pipeline)
        finished = await self.bus.mark_finished(sid, self.stage)
        index = pipeline.index(self.stage) if self.stage in pipeline else len(pipeline)
        waited_since = time.monotonic()
        while True:
            unfinished = [s for s in pipeline if s not in finished]
            if not unfinished:
                break
            if any(pipeline.index(s) > index for s in unfinished):
                return  # a later stage is still working: it publishes `done`
            if await self.bus.is_closed(sid):
                return
            if time.monotonic() - waited_since >= self.settings.bus.done_timeout_s:
                self._log.warning("done_without_stages", session_id=sid, unfinished=unfinished)
                break
            await asyncio.sleep(min(0.2, self.settings.bus.done_timeout_s))
            finished = await self.bus.finished_stages(sid)
        await lease.publish(await self._done_event(sid, pipeline, finished, reason))
        await self.bus.expire_session(sid)

    async def _done_event(
        self, sid: str, pipeline: list[str], finished: set[str], reason: str
    ) -> Done:
        """`done` with every stage's contribution (from its spec and checkpoint)."""
        merged: dict[str, Any] = {}
        per_stage: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}
        installed = stages.discover()
        for stage in pipeline:
            spec = installed.get(stage)
            checkpoint = await self.bus.load_checkpoint(sid, stage)
            contribution = spec.summary(checkpoint) if spec is not None else {}
            per_stage[stage] = (contribution, checkpoint)
            merged.update({k: v for k, v in contribution.items() if v is not None})
        # Two stages may finish at once and both see the full set: `done` has one id,
        # so the publish script keeps exactly one.
        return Done(
            session_id=sid,
            id="done",
            stage=self.stage,
            payload=DonePayload(
                duration_s=float(merged.get("duration_s", 0.0)),
                segments=int(merged.get("segments", 0)),
                stages=pipeline,
                model=merged.get("model"),
                device=merged.get("device"),
                reason=reason,
                counts=await self.bus.event_counts(sid),
                processing_s={
                    stage: round(_processing_s(part, checkpoint), 3)
                    for stage, (part, checkpoint) in per_stage.items()
                },
                stage_summaries={stage: part for stage, (part, _) in per_stage.items()},
                unfinished=[s for s in pipeline if s not in finished],
            ),
        )

    # --- leases -----------------------------------------------------------------------------

    async def _renew_loop(self, stop: asyncio.Event) -> None:
        interval = self.settings.bus.renew_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            self.beat = time.monotonic()
            for entry_id, (lease, task) in list(self.leases.items()):
                if task.done():
                    continue
                try:
                    still_mine = await self.bus.renew_lease(self.stage, self.name, entry_id)
                except TRANSIENT_ERRORS as exc:
                    self._log.warning("renew_failed", session_id=lease.session_id, error=str(exc))
                    continue
                if not still_mine:
                    metrics.LEASES_LOST.labels(self.stage).inc()
                    self._log.warning("lease_lost", session_id=lease.session_id)
                    task.cancel()

    async def _drain(self) -> None:
        """Stop work and make every owned session claimable at once (SIGTERM path)."""
        for _lease, task in self.leases.values():
            task.cancel()
        for entry_id, (lease, task) in list(self.leases.items()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if task.cancelled() or not task.done() or task.exception() is not None:
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    # An idle time far past min-idle lets the next XAUTOCLAIM take it now.
                    idle_ms = self.settings.bus.claim_min_idle_ms * 100 + 3_600_000
                    await self.bus.release(self.stage, self.name, entry_id, idle_ms)
                    self._log.info("session_released", session_id=lease.session_id, reason="drain")
        self.leases.clear()
        metrics.SESSIONS_ACTIVE.labels(self.stage).set(0)


def raised_in_redis_client(exc: BaseException) -> bool:
    """Whether `exc` was raised inside the Redis client library (its innermost frame is
    in a `redis.*` module): a client-side symptom of a connection torn down mid-call."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return module == "redis" or module.startswith("redis.")


def _processing_s(summary: dict[str, Any], checkpoint: dict[str, Any] | None) -> float:
    """A stage's processing time: from its summary, else from its checkpoint's `summary`
    (where every stage on the shared loops keeps it)."""
    value = summary.get("processing_s")
    if value is None:
        value = ((checkpoint or {}).get("summary") or {}).get("processing_s", 0.0)
    return float(value)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
