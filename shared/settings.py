"""Typed settings, built once at the edge (CLI / main) from the environment and passed in."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

ENV_PREFIX = "STREAMSCRIBE_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True, slots=True)
class BusSettings:
    """How workers talk to Redis and hold sessions."""

    redis_url: str = DEFAULT_REDIS_URL
    socket_timeout_s: float = 10.0
    # Every blocking read uses a shorter block than the socket timeout (STYLE.md).
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


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """Limits and VAD thresholds of the ingest stage."""

    max_frame_bytes: int = 1 << 20
    min_sample_rate: int = 8000
    max_sample_rate: int = 48000
    max_channels: int = 8
    reorder_window: int = 32
    vad_threshold: float = 0.5
    # Silence that closes an utterance. 300 ms: conversations pause 0.3-1.5 s between
    # turns, and at 400 ms turns 0.3-0.4 s apart merged into one segment whose first
    # half then waited seconds for its final (bench meeting_a: max 5.8 s -> 1.9 s).
    vad_min_silence_ms: int = 300
    vad_speech_pad_ms: int = 120
    vad_min_speech_ms: int = 200
    # A registered session whose start has not come after this long ends (`no_start`).
    no_start_timeout_s: float = 60.0
    # A started session whose producer sent nothing for this long ends as if stopped
    # (`producer_timeout`), so a vanished producer cannot hold workers forever. 0: never.
    producer_idle_timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class AsrSettings:
    """Model and streaming policy of the asr stage."""

    model: str = "tiny.en"
    device: str = "auto"
    compute_type: str = "auto"
    # Threads of the encoder pass of final-quality decodes (finals, cap cuts, the decode
    # at a pause). 0: every core this process may use. The encoder, a 30 s window, is
    # most of a decode's cost; the beam search after it runs on one thread per decode.
    cpu_threads: int = 0
    # Final-quality decodes one worker runs at once (their encoder passes take turns).
    # 0: two where the process may use two or more cores, else one.
    decode_slots: int = 0
    # Partials run one at a time on their own model replica, whose threads get this
    # niceness (0-19), so a partial decoding when speech stops yields the CPU to the
    # decode that makes the final (docs/BENCHMARKS.md, "Partials in the background").
    partial_nice: int = 19
    # Beam for finals (and for the pause-time decode a final may reuse); partials use
    # partial_beam_size and stay greedy (they are many and are replaced anyway). Beam 5
    # with the audio context below gave the lowest WER of everything measured
    # (docs/BENCHMARKS.md, "Closing the WER gap").
    beam_size: int = 5
    partial_beam_size: int = 1
    partial_interval_s: float = 1.0
    max_utterance_s: float = 15.0
    max_new_tokens: int = 128
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    # A segment after the first with no_speech_prob above this is a hallucinated tail
    # ("Thank you.", "."). Measured on the fixtures' utterances: such tails 0.58-0.86,
    # first segments at most 0.12, a real second segment 0.10.
    tail_no_speech_threshold: float = 0.5
    # Committed text given to Whisper as its prompt (0: none). Live pipeline, errors on
    # conv_short/meeting_a/call_c/meeting_b: 200 chars 1/16/15/4, 60 chars 1/12/18/2,
    # none 4/7/18/4; 60 decodes faster than 200 (shorter prompt) and keeps the short
    # fixture right. Differences this small are near run-to-run noise.
    prompt_chars: int = 60
    # Final-quality decodes see the audio of the track's recent finals too: the window
    # [first word of the oldest final kept - 0.1 s, utterance end] spans at most this
    # many seconds, and those finals' text is forced as the decoder prefix, so Whisper
    # continues a conversation the way the whole-file pass does. 0: decode each
    # utterance alone. Must stay below Whisper's 30 s window.
    context_s: float = 20.0


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Health and metrics endpoint of one worker."""

    health_host: str = "0.0.0.0"
    health_port: int = 0  # 0: no endpoint (tests, embedded `up` picks ports itself)
    log_level: str = "info"
    log_json: bool = True


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a worker or CLI command needs; build it with `Settings.from_env()`."""

    bus: BusSettings = field(default_factory=BusSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    asr: AsrSettings = field(default_factory=AsrSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    # Stages that must finish a session before `done` is published.
    pipeline: tuple[str, ...] = ("ingest", "asr")
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read STREAMSCRIBE_* variables (e.g. STREAMSCRIBE_REDIS_URL, STREAMSCRIBE_ASR_MODEL)."""
        env = os.environ if env is None else env
        groups: dict[str, BusSettings | IngestSettings | AsrSettings | ServeSettings] = {
            "bus": BusSettings(),
            "ingest": IngestSettings(),
            "asr": AsrSettings(),
            "serve": ServeSettings(),
        }
        built: dict[str, Any] = {}
        for group_name, default in groups.items():
            values: dict[str, Any] = {}
            for f in fields(default):
                raw = env.get(env_name(group_name, f.name))
                if raw is not None:
                    values[f.name] = _coerce(raw, getattr(default, f.name), f.name)
            built[group_name] = replace(default, **values)
        pipeline = env.get(f"{ENV_PREFIX}PIPELINE")
        if pipeline:
            built["pipeline"] = tuple(s.strip() for s in pipeline.split(",") if s.strip())
        if env.get(f"{ENV_PREFIX}WORKER_NAME"):
            built["worker_name"] = env[f"{ENV_PREFIX}WORKER_NAME"]
        settings = cls(**built)
        return settings.with_overrides(**overrides) if overrides else settings

    def to_env(self) -> dict[str, str]:
        """STREAMSCRIBE_* variables from which `from_env()` rebuilds these settings."""
        env: dict[str, str] = {}
        for group_name in ("bus", "ingest", "asr", "serve"):
            group = getattr(self, group_name)
            for f in fields(group):
                value = getattr(group, f.name)
                text = ("1" if value else "0") if isinstance(value, bool) else str(value)
                env[env_name(group_name, f.name)] = text
        env[f"{ENV_PREFIX}PIPELINE"] = ",".join(self.pipeline)
        return env

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with `group__field=value` or top-level overrides applied."""
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
        for group, values in nested.items():
            top[group] = replace(getattr(self, group), **values)
        return replace(self, **top)


def env_name(group: str, field_name: str) -> str:
    """The variable of one setting: bus and serve settings carry no group prefix
    (STREAMSCRIBE_REDIS_URL), the others do (STREAMSCRIBE_ASR_MODEL)."""
    prefix = "" if group in ("bus", "serve") else f"{group.upper()}_"
    return f"{ENV_PREFIX}{prefix}{field_name.upper()}"


def _coerce(raw: str, default: Any, name: str) -> Any:
    try:
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
