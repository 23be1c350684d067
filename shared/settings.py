"""Typed settings, built once at the edge (CLI / main) from the environment and passed in."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from shared import stages

ENV_PREFIX = "STREAMSCRIBE_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True, slots=True)
class BusSettings:
    """How workers talk to Redis and hold sessions."""

    redis_url: str = DEFAULT_REDIS_URL
    socket_timeout_s: float = 10.0
    # Every blocking read uses a shorter block than the socket timeout, so a read that
    # waits for data is never mistaken for a dead connection.
    block_ms: int = 1000
    # A session whose registry entry has been idle this long is taken over.
    claim_min_idle_ms: int = 10_000
    # Renewal runs several times per min-idle so a live owner never looks dead.
    renew_interval_ms: int = 2_000
    max_sessions_per_worker: int = 8
    session_ttl_s: int = 24 * 3600
    # Drop audio log entries once every stage that reads the log has checkpointed past
    # them (False: keep the whole log until the session expires, e.g. to replay it).
    trim_audio: bool = True
    # Consumers of a stage's group that hold no session and have not read for this long
    # (pods that are gone) are deleted, at most once a minute per worker.
    prune_consumers_idle_ms: int = 600_000
    # A stage that finished a session while stages before it in the pipeline have not
    # (their worker is down) waits this long for them, then publishes `done` naming
    # them as unfinished, so a dead optional stage cannot hold a session open forever.
    done_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Health and metrics endpoint of one worker."""

    health_host: str = "0.0.0.0"
    health_port: int = 0  # 0: no endpoint (tests, embedded `up` picks ports itself)
    log_level: str = "info"
    log_json: bool = True


# The stages of the embedded default deployment, in pipeline order.
DEFAULT_PIPELINE = ("ingest", "asr", "enrich", "semantic")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a worker or CLI command needs; build it with `Settings.from_env()`.

    Stage settings live beside their stages (each stage's spec names its settings type);
    `stages` maps a stage name to its settings object, read with `stage()`.
    """

    bus: BusSettings = field(default_factory=BusSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    # Stages that must finish a session before `done` is published, in data-path order.
    pipeline: tuple[str, ...] = DEFAULT_PIPELINE
    stages: Mapping[str, Any] = field(default_factory=dict)
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")

    def stage(self, name: str, kind: type[T]) -> T:
        """The settings of stage `name` (its defaults when none were given)."""
        value = self.stages.get(name)
        if value is None:
            return kind()
        if not isinstance(value, kind):
            raise TypeError(f"settings of stage {name!r} are a {type(value).__name__}")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read STREAMSCRIBE_* variables (e.g. STREAMSCRIBE_REDIS_URL, STREAMSCRIBE_ASR_MODEL).

        Each installed stage's settings come from STREAMSCRIBE_<STAGE>_<FIELD>.
        """
        env = os.environ if env is None else env
        built: dict[str, Any] = {
            "bus": _from_env(BusSettings(), "bus", env),
            "serve": _from_env(ServeSettings(), "serve", env),
        }
        built["stages"] = {
            name: _from_env(spec.settings_type(), name, env)
            for name, spec in stages.discover().items()
        }
        pipeline = env.get(f"{ENV_PREFIX}PIPELINE")
        if pipeline:
            built["pipeline"] = tuple(s.strip() for s in pipeline.split(",") if s.strip())
        if env.get(f"{ENV_PREFIX}WORKER_NAME"):
            built["worker_name"] = env[f"{ENV_PREFIX}WORKER_NAME"]
        settings = cls(**built)
        return settings.with_overrides(**overrides) if overrides else settings

    def to_env(self) -> dict[str, str]:
        """STREAMSCRIBE_* variables from which `from_env()` rebuilds these settings."""
        groups: dict[str, Any] = {"bus": self.bus, "serve": self.serve, **self.stages}
        env: dict[str, str] = {}
        for group_name, group in groups.items():
            for f in fields(group):
                value = getattr(group, f.name)
                text = ("1" if value else "0") if isinstance(value, bool) else str(value)
                env[env_name(group_name, f.name)] = text
        env[f"{ENV_PREFIX}PIPELINE"] = ",".join(self.pipeline)
        return env

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with `group__field=value` or top-level overrides applied.

        A group is `bus`, `serve` or a stage name (`asr__model="small.en"`).
        """
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            if value is None:
                continue
            if "__" in key:
                group, name = key.split("__", 1)
                nested.setdefault(group, {})[name] = value
            else:
                top[key] = value
        stage_settings = dict(top.pop("stages", self.stages))
        for group, values in nested.items():
            if group in ("bus", "serve"):
                top[group] = replace(getattr(self, group), **values)
                continue
            current = stage_settings.get(group)
            if current is None:
                current = stages.get_spec(group).settings_type()
            stage_settings[group] = replace(current, **values)
        return replace(self, stages=stage_settings, **top)


def _from_env(default: T, group: str, env: Mapping[str, str]) -> T:
    values: dict[str, Any] = {}
    for f in fields(default):  # type: ignore[arg-type]  # every settings group is a dataclass
        raw = env.get(env_name(group, f.name))
        if raw is not None:
            values[f.name] = coerce_setting(raw, getattr(default, f.name), f.name)
    return replace(default, **values)  # type: ignore[type-var]  # as above


def env_name(group: str, field_name: str) -> str:
    """The variable of one setting: bus and serve settings carry no group prefix
    (STREAMSCRIBE_REDIS_URL), a stage's do (STREAMSCRIBE_ASR_MODEL)."""
    prefix = "" if group in ("bus", "serve") else f"{group.upper()}_"
    return f"{ENV_PREFIX}{prefix}{field_name.upper()}"


def coerce_setting(raw: str, default: Any, name: str) -> Any:
    """`raw` (an environment value) read as the type of `default`: bool (1/true/yes/on,
    0/false/no/off), int, float, a tuple of comma-separated strings, or a string."""
    try:
        if isinstance(default, tuple):
            return tuple(t.strip() for t in raw.split(",") if t.strip())
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise ValueError(
            f"setting {name}: cannot read {raw!r} as {type(default).__name__}"
        ) from None
    return raw
