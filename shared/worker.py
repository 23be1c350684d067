"""The one worker loop every stage runs: claim, renew, take over, checkpoint, drain.

A stage supplies a `StageHandler` (pure-ish session logic behind an async
`run_session`); this module owns everything about holding sessions on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import structlog

from shared import keys, metrics
from shared.bus import REDIS_UNAVAILABLE, Bus, PublishResult, StreamEntry
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

    def summary(self, checkpoint: dict[str, Any] | None) -> dict[str, Any]:
        """Fields this stage contributes to the `done` payload, from its checkpoint."""

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
    settings: Settings
    takeover: bool = False
    lost: asyncio.Event = field(default_factory=asyncio.Event)

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
            await self.bus.redis.xack(keys.registry(), self.stage, self._pending_acks[0])
            self._pending_acks.pop(0)

    async def _claim_some(self, stop: asyncio.Event) -> None:
        await self._ack_rejected()
        free = self.settings.bus.max_sessions_per_worker - len(self.leases)
        if free <= 0:
            await _sleep_or_stop(stop, self.settings.bus.block_ms / 1000)
            return
        redis = self.bus.redis
        # Dead owners first: an entry idle past min-idle belongs to nobody alive.
        reply = await redis.xautoclaim(
            keys.registry(),
            self.stage,
            self.name,
            min_idle_time=self.settings.bus.claim_min_idle_ms,
            start_id="0-0",
            count=free,
        )
        claimed = cast(list[StreamEntry], reply[1])  # [cursor, entries, (deleted ids)]
        for entry_id, fields in claimed:
            if fields:
                self._start(entry_id, fields, takeover=True)
        free = self.settings.bus.max_sessions_per_worker - len(self.leases)
        if free <= 0 or stop.is_set():
            return
        response = await redis.xreadgroup(
            self.stage,
            self.name,
            {keys.registry(): ">"},
            count=free,
            block=self.settings.bus.block_ms,
        )
        for _stream, entries in cast(list[tuple[bytes, list[StreamEntry]]], response or []):
            for entry_id, fields in entries:
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
            session_id=session_id,
            entry_id=entry_id,
            stage=self.stage,
            bus=self.bus,
            settings=self.settings,
            takeover=takeover,
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
                await self._run_once(lease)
                await self.bus.redis.xack(keys.registry(), self.stage, lease.entry_id)
                slog.info("session_released", reason="finished")
                return
            except asyncio.CancelledError:
                raise
            except TRANSIENT_ERRORS as exc:
                slog.warning("session_interrupted", error=str(exc))
                await asyncio.sleep(1.0)
            except Exception as exc:
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
                        await self.bus.redis.xack(keys.registry(), self.stage, lease.entry_id)
                        return
                await asyncio.sleep(1.0)

    async def _run_once(self, lease: SessionLease) -> None:
        if self.stage in await self.bus.finished_stages(lease.session_id):
            return
        await self.handler.run_session(lease)
        await self._finish(lease, reason="stopped")

    async def _finish(self, lease: SessionLease, *, reason: str) -> None:
        """Mark this stage finished; the last stage of the pipeline publishes `done`."""
        sid = lease.session_id
        finished = await self.bus.mark_finished(sid, self.stage)
        if not set(self.settings.pipeline) <= finished:
            return
        summary: dict[str, Any] = {"stages": list(self.settings.pipeline), "reason": reason}
        for stage in self.settings.pipeline:
            state = await self.bus.load_checkpoint(sid, stage)
            summary.update((state or {}).get("summary", {}))
        done = Done(
            session_id=sid,
            id="done",
            stage=self.stage,
            payload=DonePayload(
                duration_s=float(summary.get("duration_s", 0.0)),
                segments=int(summary.get("segments", 0)),
                stages=summary["stages"],
                model=summary.get("model"),
                device=summary.get("device"),
                reason=str(summary.get("reason", reason)),
            ),
        )
        # Two stages may finish at once and both see the full set: `done` has one id,
        # so the publish script keeps exactly one.
        await lease.publish(done)
        await self.bus.expire_session(sid)

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
                    lease.lost.set()
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
                    await self.bus.redis.xclaim(
                        keys.registry(),
                        self.stage,
                        self.name,
                        min_idle_time=0,
                        message_ids=[entry_id],
                        idle=self.settings.bus.claim_min_idle_ms * 100 + 3_600_000,
                        justid=True,
                    )
                    self._log.info("session_released", session_id=lease.session_id, reason="drain")
        self.leases.clear()
        metrics.SESSIONS_ACTIVE.labels(self.stage).set(0)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
