"""Sessions as the gateway sees them: who owns one, who may reach it, create, status, stop."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis

from shared import keys
from shared.bus import xrange
from shared.protocol import Limits
from shared.schemas import Features, SessionConfig
from streamscribe.gateway import metrics
from streamscribe.gateway.auth import AuthError, Principal
from streamscribe.gateway.settings import GatewaySettings
from streamscribe.producer import Producer, SessionExists, new_session_id

# The reference document's StreamConfig spells features `enable_<feature>`.
_ENABLE_PREFIX = "enable_"


class SessionNotFound(Exception):
    """No session with this id (or one that expired)."""


class SessionLimit(Exception):
    """The token's subject already has as many open sessions as it may."""


def parse_config(raw: object) -> SessionConfig:
    """A SessionConfig from a client's `config` object (SessionConfig fields; the reference
    document's `enable_<feature>` booleans map onto `features`). Raises ValueError."""
    if raw is None:
        return SessionConfig()
    if not isinstance(raw, dict):
        raise ValueError("config must be an object")
    fields = dict(raw)
    features = dict(fields.pop("features", None) or {})
    for name in [k for k in fields if k.startswith(_ENABLE_PREFIX)]:
        features[name[len(_ENABLE_PREFIX) :]] = fields.pop(name)
    try:
        return msgspec.convert(
            {**fields, "features": msgspec.convert(features, Features)}, SessionConfig
        )
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class SessionStatus:
    session_id: str
    state: str  # created (no event yet), running, done
    last_seq: int
    finished_stages: list[str]
    done: dict[str, Any] | None


class SessionStore:
    """Ownership and lifecycle of sessions; every key it writes has a TTL."""

    def __init__(self, redis: aioredis.Redis, settings: GatewaySettings, ingest: Limits) -> None:
        self.redis = redis
        self.settings = settings
        self.ingest = ingest

    def producer(self) -> Producer:
        """A producer for one connection (it remembers the configs of sessions it started)."""
        return Producer(self.redis, limits=self.ingest)

    async def create(
        self,
        principal: Principal,
        config: SessionConfig,
        session_id: str | None = None,
        producer: Producer | None = None,
    ) -> str:
        """Start a session owned by `principal`'s subject; returns its id.

        Raises InvalidConfig, SessionExists, SessionLimit, AuthError (an id the token
        does not name), keys.InvalidSessionId.
        """
        producer = producer or self.producer()
        producer.check_config(config)
        if principal.sessions is not None and (
            session_id is None or not principal.names(session_id)
        ):
            raise AuthError(403, "forbidden", "this token may only create the sessions it names")
        sid = keys.check_session_id(session_id) if session_id else new_session_id()
        await self._check_limit(principal)
        ttl = self.settings.owner_ttl_s
        # Claim the id first: two clients racing for one id cannot both own it.
        if not await self.redis.set(keys.gateway_owner(sid), principal.subject, nx=True, ex=ttl):
            raise SessionExists(f"session {sid!r} already exists; use a new session id")
        try:
            await producer.start(sid, config)
        except BaseException:
            await self.redis.delete(keys.gateway_owner(sid))
            raise
        subject_key = keys.gateway_subject_sessions(principal.subject)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(subject_key, {sid: time.time()})
        pipe.expire(subject_key, ttl)
        await pipe.execute()
        metrics.SESSIONS_STARTED.inc()
        return sid

    async def _check_limit(self, principal: Principal) -> None:
        subject_key = keys.gateway_subject_sessions(principal.subject)
        # Sessions older than the owner TTL cannot be open any more.
        await self.redis.zremrangebyscore(subject_key, 0, time.time() - self.settings.owner_ttl_s)
        members = cast(list[bytes], await self.redis.zrange(subject_key, 0, -1))
        if len(members) < self.settings.max_sessions_per_token:
            return
        pipe = self.redis.pipeline(transaction=False)
        for member in members:
            pipe.hexists(keys.heads(member.decode()), "_closed")
        closed = await pipe.execute()
        ended = [m for m, c in zip(members, closed, strict=True) if c]
        if ended:
            await self.redis.zrem(subject_key, *ended)
        if len(members) - len(ended) >= self.settings.max_sessions_per_token:
            metrics.REFUSED.labels("session_limit").inc()
            raise SessionLimit(
                f"this token already has {self.settings.max_sessions_per_token} open sessions "
                "(max_sessions_per_token); end one first"
            )

    async def authorize(self, principal: Principal, session_id: str) -> None:
        """AuthError(403) unless the token may reach the session; SessionNotFound after."""
        try:
            keys.check_session_id(session_id)
        except keys.InvalidSessionId:
            raise SessionNotFound(f"no session {session_id!r}") from None
        if not principal.names(session_id):
            raw = await self.redis.get(keys.gateway_owner(session_id))
            owner = raw.decode() if isinstance(raw, bytes) else raw
            if principal.sessions is not None or owner != principal.subject:
                metrics.REFUSED.labels("forbidden").inc()
                raise AuthError(403, "forbidden", "this token may not reach that session")
        if not await self.redis.exists(keys.events(session_id), keys.inbox(session_id)):
            raise SessionNotFound(f"no session {session_id!r}")
        # Keep the ownership record as long as clients come back to the session.
        await self.redis.expire(keys.gateway_owner(session_id), self.settings.owner_ttl_s)

    async def last_seq(self, session_id: str) -> int:
        raw = await self.redis.hget(keys.heads(session_id), "_seq")
        return int(raw) if raw else 0

    async def is_closed(self, session_id: str) -> bool:
        return bool(await self.redis.hexists(keys.heads(session_id), "_closed"))

    async def status(self, session_id: str) -> SessionStatus:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(keys.heads(session_id), "_seq")
        pipe.hexists(keys.heads(session_id), "_closed")
        pipe.smembers(keys.finished(session_id))
        raw_seq, closed, finished = await pipe.execute()
        last_seq = int(raw_seq) if raw_seq else 0
        done = None
        if closed and last_seq:
            entries = await xrange(self.redis, keys.events(session_id), min=f"{last_seq}-0")
            if entries and entries[-1][1].get(b"type") == b"done":
                done = msgspec.json.decode(entries[-1][1][b"data"]).get("payload")
        state = "done" if closed else ("running" if last_seq else "created")
        return SessionStatus(
            session_id=session_id,
            state=state,
            last_seq=last_seq,
            finished_stages=sorted(m.decode() for m in finished),
            done=done,
        )

    async def stop(self, session_id: str, producer: Producer | None = None) -> bool:
        """Send the producer `stop` (the pipeline finishes and publishes `done`).

        False when the session is already closed: nothing is written then, so no key of
        an ended session is touched again.
        """
        if await self.is_closed(session_id):
            return False
        await (producer or self.producer()).stop(session_id)
        return True
