"""`streamscribe status`: sessions pending per stage group and the lengths of their streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TextIO

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared import keys

# XPENDING lists at most this many sessions per stage; the count above stays exact.
_LIST_LIMIT = 50


@dataclass
class PendingSession:
    session_id: str
    owner: str
    idle_s: float
    deliveries: int
    lengths: dict[str, int] = field(default_factory=dict)


@dataclass
class StageStatus:
    stage: str
    consumers: int
    pending: int
    lag: int | None
    sessions: list[PendingSession] = field(default_factory=list)


async def collect_status(redis: aioredis.Redis) -> tuple[int, list[StageStatus]]:
    """(registry length, one StageStatus per consumer group on the registry)."""
    registry = keys.registry()
    try:
        groups = await redis.xinfo_groups(registry)
    except ResponseError:
        return 0, []  # no registry stream yet: nothing was ever registered
    length = int(await redis.xlen(registry))
    stages = []
    for group in groups:
        name = _text(group["name"])
        status = StageStatus(
            stage=name,
            consumers=int(group["consumers"]),
            pending=int(group["pending"]),
            lag=None if group.get("lag") is None else int(group["lag"]),
        )
        if status.pending:
            rows = await redis.xpending_range(registry, name, min="-", max="+", count=_LIST_LIMIT)
            for row in rows:
                status.sessions.append(await _pending_session(redis, registry, row))
        stages.append(status)
    return length, stages


async def _pending_session(
    redis: aioredis.Redis, registry: str, row: dict[str, Any]
) -> PendingSession:
    entry_id = row["message_id"]
    entries = await redis.xrange(registry, min=entry_id, max=entry_id)
    fields = entries[0][1] if entries else None
    sid = _text(fields.get(b"session_id", b"?")) if fields else "?"
    session = PendingSession(
        session_id=sid,
        owner=_text(row["consumer"]),
        idle_s=int(row["time_since_delivered"]) / 1000,
        deliveries=int(row["times_delivered"]),
    )
    try:
        streams = {"in": keys.inbox(sid), "audio": keys.audio(sid), "events": keys.events(sid)}
    except keys.InvalidSessionId:
        return session
    for label, key in streams.items():
        session.lengths[label] = int(await redis.xlen(key))
    return session


async def print_status(redis: aioredis.Redis, out: TextIO) -> None:
    length, stages = await collect_status(redis)
    # Entries every stage is done with are trimmed, so this counts sessions still held
    # or waiting plus a few finished ones, not every session ever registered.
    entries = "1 entry" if length == 1 else f"{length} entries"
    out.write(f"registry {keys.registry()}: {entries}\n")
    if not stages:
        out.write("no stage has started yet (no consumer groups)\n")
    for st in stages:
        lag = "?" if st.lag is None else str(st.lag)
        out.write(
            f"stage {st.stage}: {st.pending} active, {lag} waiting, {st.consumers} consumer(s)\n"
        )
        for s in st.sessions:
            sizes = " ".join(f"{k}={v}" for k, v in s.lengths.items())
            out.write(
                f"  {s.session_id}  owner {s.owner}  idle {s.idle_s:.1f}s  "
                f"deliveries {s.deliveries}  {sizes}\n"
            )
        if st.pending > len(st.sessions):
            out.write(f"  ... {st.pending - len(st.sessions)} more\n")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
