"""The bus: connecting to Redis, idempotent publish, session registry, checkpoints."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterError, RedisClusterException, ResponseError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from shared import keys
from shared.schemas import Event, Ready, decode_event, encode, event_type, is_final
from shared.settings import BusSettings

_SEQ_PLACEHOLDER = b'"seq":0,'

# What redis-py raises when Redis is down, unreachable or too slow, or (a cluster) has
# no reachable node or uncovered slots (RedisClusterException, ClusterDownError), or a
# slot is being resharded longer than its redirect retries last: a script over keys on
# both sides of the move gets TRYAGAIN until it ends, and after 16 tries redis-py gives
# up with ClusterError("TTL exhausted."). ClusterDownError is a ClusterError.
REDIS_DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    RedisClusterException,
    ClusterError,
    TryAgainError,
)
# The same seen from a socket too: callers wait and retry, or report it as such.
REDIS_UNAVAILABLE = (*REDIS_DOWN, ConnectionError, OSError)

StreamEntry = tuple[bytes, dict[bytes, bytes]]


async def xrange(
    redis: aioredis.Redis, key: str, *, min: str = "-", max: str = "+", count: int | None = None
) -> list[StreamEntry]:
    """XRANGE with the types redis-py returns for a bytes client."""
    return cast(list[StreamEntry], await redis.xrange(key, min=min, max=max, count=count))


async def xread(
    redis: aioredis.Redis, streams: dict[str, str], *, count: int, block: int
) -> list[tuple[bytes, list[StreamEntry]]]:
    """XREAD (block in ms, shorter than the socket timeout) with precise types."""
    response = await redis.xread(streams, count=count, block=block)  # type: ignore[arg-type]
    return cast(list[tuple[bytes, list[StreamEntry]]], response or [])


def _script(name: str) -> str:
    return resources.files("shared").joinpath(name).read_text()


# A URL with one of these schemes names a seed node of a Redis Cluster.
_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def split_cluster_url(url: str) -> tuple[str, bool]:
    """`redis+cluster://host:port` -> (`redis://host:port`, True); other URLs unchanged."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in _CLUSTER_SCHEMES:
        return f"{_CLUSTER_SCHEMES[scheme]}://{rest}", True
    return url, False


def connect(settings: BusSettings) -> aioredis.Redis:
    """An asyncio Redis client with the timeouts of `settings` (bytes in, bytes out).

    A `redis+cluster://` (or `rediss+cluster://`) URL gives a Redis Cluster client that
    discovers the other nodes from the one named. Every key of a session carries the
    session's hash tag, so each script and transaction touches a single slot, and the
    cluster client serves every command streamscribe sends; it is typed as `Redis` so
    that callers stay one type.
    """
    url, cluster = split_cluster_url(settings.redis_url)
    options: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout_s,
        "socket_connect_timeout": min(settings.socket_timeout_s, 5.0),
        "health_check_interval": 30,
    }
    if cluster:
        return cast(aioredis.Redis, RedisCluster.from_url(url, **options))
    return aioredis.Redis.from_url(url, **options)


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What the publish script did: `seq` when appended, else why it dropped the event."""

    published: bool
    seq: int | None = None
    reason: str | None = None
    head_revision: int = 0


def split_for_seq(event: Event) -> tuple[bytes, bytes]:
    """Encode `event` with seq 0 and split the JSON where the script splices the real seq."""
    data = encode(msgspec.structs.replace(event, seq=0))
    # `seq` is the first field after the tag, so its first occurrence is the top-level
    # one; a quote inside any JSON string is escaped and cannot match.
    head, sep, tail = data.partition(_SEQ_PLACEHOLDER)
    if not sep:
        raise ValueError("encoded event has no top-level seq field")
    return head + b'"seq":', b"," + tail


class Bus:
    """Session-scoped operations on Redis shared by every stage and by consumers."""

    def __init__(self, redis: aioredis.Redis, settings: BusSettings) -> None:
        self.redis = redis
        self.settings = settings
        self._publish = redis.register_script(_script("publish.lua"))
        self._renew = redis.register_script(_script("renew.lua"))
        self._trim_audio = redis.register_script(_script("trim_audio.lua"))
        self._prune_consumers = redis.register_script(_script("prune_consumers.lua"))
        self._trim_registry = redis.register_script(_script("trim_registry.lua"))
        self._mark_finished = redis.register_script(_script("mark_finished.lua"))
        self._commit_audio = redis.register_script(_script("commit_audio.lua"))

    # --- events ---------------------------------------------------------------------

    async def publish(
        self, event: Event, checkpoint: tuple[str, dict[str, Any]] | None = None
    ) -> PublishResult:
        """Append `event` unless its (id, revision) is not newer than what was published.

        With `checkpoint=(stage, state)`, the stage's checkpoint is saved atomically with
        the event (and only if the event is appended).
        """
        if not event.emitted_at:
            event = msgspec.structs.replace(event, emitted_at=time.time())
        head, tail = split_for_seq(event)
        sid = event.session_id
        script_keys = [keys.events(sid), keys.heads(sid)]
        args: list[Any] = [
            event.id,
            event.revision,
            "1" if is_final(event) else "0",
            event_type(event),
            head,
            tail,
        ]
        if checkpoint is not None:
            script_keys.append(keys.checkpoints(sid))
            args += [checkpoint[0], msgspec.json.encode(checkpoint[1])]
        raw = await self._publish(keys=script_keys, args=args)
        if int(raw[0]) == 1:
            return PublishResult(True, seq=int(raw[1]))
        reason = raw[1].decode() if isinstance(raw[1], bytes) else str(raw[1])
        return PublishResult(False, reason=reason, head_revision=int(raw[2]))

    async def publish_closing(
        self, event: Event, checkpoint: tuple[str, dict[str, Any]] | None = None
    ) -> PublishResult:
        """Publish an event that closes its id, outranking partials a dead writer published.

        A worker that took a session over counts revisions from its checkpoint; the dead
        owner may have published more partials for the same id. A final must still land
        exactly once, so a stale final is re-published once above the current head.
        """
        result = await self.publish(event, checkpoint)
        if not result.published and result.reason == "stale":
            bumped = _with_revision(event, result.head_revision + 1)
            result = await self.publish(bumped, checkpoint)
        return result

    async def head_revision(self, session_id: str, entity_id: str) -> int:
        """The newest revision published for `entity_id` (0 if none)."""
        raw = await self.redis.hget(keys.heads(session_id), f"r:{entity_id}")
        return int(raw) if raw else 0

    async def is_closed(self, session_id: str) -> bool:
        return bool(await self.redis.hexists(keys.heads(session_id), "_closed"))

    async def ready_event(self, session_id: str) -> Ready | None:
        """The session's `ready` event (the config ingest acknowledged), in one read."""
        raw = await self.redis.hget(keys.heads(session_id), "_ready")
        if raw is None:
            return None
        event = decode_event(raw)
        return event if isinstance(event, Ready) else None

    async def event_counts(self, session_id: str) -> dict[str, int]:
        """Events published so far, per event type."""
        heads = cast(dict[bytes, bytes], await self.redis.hgetall(keys.heads(session_id)))
        return {
            name[2:].decode(): int(value) for name, value in heads.items() if name.startswith(b"n:")
        }

    async def events_after(
        self, session_id: str, after_seq: int, *, count: int
    ) -> list[StreamEntry]:
        """Up to `count` stream entries with seq > `after_seq` (an event's id is `<seq>-0`)."""
        return await xrange(self.redis, keys.events(session_id), min=f"({after_seq}-0", count=count)

    async def wait_for_events(self, session_id: str, after_seq: int, block_ms: int) -> None:
        """Block up to `block_ms` until an event with seq > `after_seq` exists."""
        await xread(
            self.redis, {keys.events(session_id): f"{after_seq}-0"}, count=1, block=block_ms
        )

    # --- registry ---------------------------------------------------------------------

    async def register_session(self, session_id: str) -> bytes:
        """Announce a session to every stage (one registry entry, one per session)."""
        return cast(bytes, await self.redis.xadd(keys.registry(), {"session_id": session_id}))

    async def claim_registration(self, session_id: str, entry_id: bytes) -> bool:
        """Whether `entry_id` is the session's registration: the first registry entry of
        the session any stage claimed (SET NX, so concurrent claimers agree); a session
        registered twice is then processed once."""
        key = keys.registration(session_id)
        await self.redis.set(key, entry_id, nx=True, ex=self.settings.session_ttl_s)
        return bool(await self.redis.get(key) == entry_id)

    async def claim_idle(
        self, group: str, consumer: str, *, min_idle_ms: int, count: int
    ) -> list[StreamEntry]:
        """Registry entries idle past `min_idle_ms` (their owner is gone), now `consumer`'s."""
        reply = await self.redis.xautoclaim(
            keys.registry(),
            group,
            consumer,
            min_idle_time=min_idle_ms,
            start_id="0-0",
            count=count,
        )
        return cast(list[StreamEntry], reply[1])  # [cursor, entries, (deleted ids)]

    async def claim_new(
        self, group: str, consumer: str, *, count: int, block_ms: int
    ) -> list[StreamEntry]:
        """Registry entries no consumer of `group` has read yet, now `consumer`'s."""
        response = await self.redis.xreadgroup(
            group, consumer, {keys.registry(): ">"}, count=count, block=block_ms
        )
        rows = cast(list[tuple[bytes, list[StreamEntry]]], response or [])
        return [entry for _stream, entries in rows for entry in entries]

    async def ack(self, group: str, entry_id: bytes) -> None:
        """`group` is done with a registry entry."""
        await self.redis.xack(keys.registry(), group, entry_id)

    async def release(self, group: str, consumer: str, entry_id: bytes, idle_ms: int) -> None:
        """Hand a held entry back: an idle time past min-idle lets the next claim take it."""
        await self.redis.xclaim(
            keys.registry(),
            group,
            consumer,
            min_idle_time=0,
            message_ids=[entry_id],
            idle=idle_ms,
            justid=True,
        )

    async def server_time(self) -> float:
        """Redis's clock, in seconds: one clock for every worker of a session."""
        seconds, micros = await self.redis.time()
        return int(seconds) + int(micros) / 1e6

    async def ensure_group(self, group: str) -> None:
        try:
            # Start at 0, not $: sessions registered before the first worker came up
            # must still be processed.
            await self.redis.xgroup_create(keys.registry(), group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def renew_lease(self, group: str, consumer: str, entry_id: bytes | str) -> bool:
        """Keep a registry entry pending for this worker; False when another took it."""
        raw = await self._renew(keys=[keys.registry()], args=[group, consumer, entry_id])
        return int(raw) == 1

    async def prune_consumers(self, group: str, min_idle_ms: int) -> list[str]:
        """Delete `group`'s consumers that hold nothing and are idle `min_idle_ms` or more."""
        names = await self._prune_consumers(keys=[keys.registry()], args=[group, min_idle_ms])
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]

    async def trim_registry(self, stages: Sequence[str]) -> int:
        """Drop registry entries that every stage's group has claimed and let go of.

        Each group's oldest pending entry and last delivered entry bound the trim, and
        nothing is trimmed while a stage of `stages` has no group yet (it would start
        reading from the first entry). Returns the entries removed.
        """
        return int(await self._trim_registry(keys=[keys.registry()], args=list(stages)))

    # --- checkpoints and stage completion -----------------------------------------------

    async def load_checkpoint(self, session_id: str, stage: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(keys.checkpoints(session_id), stage)
        return msgspec.json.decode(raw) if raw else None

    async def save_checkpoint(self, session_id: str, stage: str, state: dict[str, Any]) -> None:
        await self.redis.hset(keys.checkpoints(session_id), stage, msgspec.json.encode(state))

    async def trim_audio(self, session_id: str, readers: Sequence[str]) -> int:
        """Drop audio log entries that every stage in `readers` has checkpointed past.

        Each reader's checkpoint holds `resume_id`, the oldest entry it still needs; the
        log keeps everything from the oldest of those on. Returns the entries removed.
        """
        if not readers:
            return 0
        keys_ = [keys.audio(session_id), keys.checkpoints(session_id)]
        return int(await self._trim_audio(keys=keys_, args=list(readers)))

    async def commit_audio(
        self,
        session_id: str,
        stage: str,
        *,
        expected_commit: int,
        checkpoint: dict[str, Any],
        entries: Sequence[Mapping[str, EncodableT]],
        inbox_min_id: str,
    ) -> bool:
        """Append `entries` to the audio log, store `checkpoint` (which carries the next
        commit number) and trim the inbox below `inbox_min_id`, in one atomic step.

        False, and nothing written, when the stage's stored commit number is not
        `expected_commit`: another owner committed since (shared/commit_audio.lua).
        """
        args: list[EncodableT] = [
            stage,
            expected_commit,
            msgspec.json.encode(checkpoint),
            inbox_min_id,
        ]
        for fields in entries:
            args.append(len(fields))
            for name, value in fields.items():
                args += [name, value]
        keys_ = [keys.checkpoints(session_id), keys.audio(session_id), keys.inbox(session_id)]
        return bool(await self._commit_audio(keys=keys_, args=args))

    async def finished_stages(self, session_id: str) -> set[str]:
        members = cast(set[bytes], await self.redis.smembers(keys.finished(session_id)))
        return {m.decode() for m in members}

    async def mark_finished(self, session_id: str, stage: str) -> set[str]:
        """Record that `stage` is done with the session; returns every finished stage."""
        members = await self._mark_finished(keys=[keys.finished(session_id)], args=[stage])
        return {m.decode() for m in members}

    async def expire_session(self, session_id: str) -> None:
        """Let a finished session's keys expire after the configured TTL."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys.session_keys(session_id):
            pipe.expire(key, self.settings.session_ttl_s)
        await pipe.execute()


def _with_revision(event: Event, revision: int) -> Event:
    payload = getattr(event, "payload", None)
    if payload is not None and hasattr(payload, "revision"):
        payload = msgspec.structs.replace(payload, revision=revision)
        return msgspec.structs.replace(event, revision=revision, payload=payload)
    return msgspec.structs.replace(event, revision=revision)
