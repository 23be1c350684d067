"""Stage plug-ins: the spec each stage exports and their discovery through entry points.

A stage is a package that exports one `StageSpec` under the `streamscribe.stages`
entry-point group (`ingest = "services.ingest.spec:SPEC"` in pyproject.toml), the way
arq takes a worker's settings by dotted path. The core names no stage: the runner,
the supervisor, settings and `done` all go through the specs found here, so a stage
can come from another installed distribution. A spec module must import quickly and
load no model: the stage that publishes `done` loads every stage's spec to read the
others' summaries, and the CLI lists the specs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.settings import Settings
    from shared.worker import StageHandler

ENTRY_POINT_GROUP = "streamscribe.stages"

# What a stage's `done` contribution is computed from: its own checkpoint (or None).
SummaryFn = Callable[[Mapping[str, Any] | None], dict[str, Any]]


def no_summary(_checkpoint: Mapping[str, Any] | None) -> dict[str, Any]:
    """The summary of a stage that contributes nothing to `done`."""
    return {}


@dataclass(frozen=True, slots=True)
class StageSpec:
    """Everything the core needs to know about one stage."""

    name: str
    # A frozen dataclass of int/float/str/bool fields with defaults; built from the
    # environment with the prefix STREAMSCRIBE_<NAME>_ (shared.settings).
    settings_type: type[Any]
    # Builds the stage's handler; imports the stage's heavy modules only when called.
    make_handler: Callable[[Settings], StageHandler]
    # Whether the stage reads the audio log: its checkpoint's `resume_id` then bounds
    # the trimming of the log (shared/trim_audio.lua).
    reads_audio: bool = False
    # Event-driven stages: the stages whose events it follows. Its session ends once
    # these (those of them in the pipeline) have finished and it has read their events.
    upstream: tuple[str, ...] = ()
    # Its Prometheus collectors (registered when the spec's module is imported).
    metrics: tuple[Any, ...] = ()
    # Its part of `done`: a pure function of its checkpoint, so any stage's worker can
    # publish `done` for the whole pipeline.
    summary: SummaryFn = field(default=no_summary)


class UnknownStage(ValueError):
    """A stage name no installed distribution provides."""


class MissingDependency(RuntimeError):
    """A stage's worker needs packages of an extra that is not installed."""

    def __init__(self, stage: str, extra: str, error: ImportError) -> None:
        super().__init__(
            f"stage {stage!r} needs packages that are not installed ({error.name or error}); "
            f"install them with: pip install 'streamscribe[{extra}]'"
        )


def require_modules(stage: str, extra: str, modules: Sequence[str]) -> None:
    """Import `modules` now, so a missing extra fails with the install command to run."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise MissingDependency(stage, extra, exc) from exc


class BadStagePlugin(RuntimeError):
    """An entry point of the group that does not load or does not name a StageSpec."""


@cache
def discover() -> Mapping[str, StageSpec]:
    """Every installed stage, by name (loaded once per process)."""
    return load_specs(entry_points(group=ENTRY_POINT_GROUP))


def load_specs(points: Any) -> dict[str, StageSpec]:
    """Load `points` (entry points of the stage group) into specs, checking each."""
    specs: dict[str, StageSpec] = {}
    for point in sorted(points, key=lambda p: p.name):
        spec = _load(point)
        if spec.name != point.name:
            raise BadStagePlugin(
                f"entry point {point.name!r} ({point.value}) names stage {spec.name!r}"
            )
        specs.setdefault(spec.name, spec)  # the first distribution on sys.path wins
    return specs


def _load(point: EntryPoint) -> StageSpec:
    try:
        spec = point.load()
    except Exception as exc:
        raise BadStagePlugin(
            f"stage plug-in {point.name!r} ({point.value}) failed to load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(spec, StageSpec):
        raise BadStagePlugin(
            f"stage plug-in {point.name!r} ({point.value}) is a {type(spec).__name__}, "
            "not a StageSpec"
        )
    return spec


def get_spec(name: str) -> StageSpec:
    """The spec of stage `name`, or UnknownStage listing the installed ones."""
    specs = discover()
    spec = specs.get(name)
    if spec is None:
        known = ", ".join(sorted(specs)) or "(none installed)"
        raise UnknownStage(f"unknown stage {name!r}; installed: {known}")
    return spec


def audio_readers(pipeline: Sequence[str]) -> tuple[str, ...]:
    """The stages of `pipeline` that read the audio log: their checkpoints bound its trim.

    A stage of the pipeline that is not installed here counts as a reader: trimming
    audio it may still need would lose data, keeping some too long costs only memory.
    """
    specs = discover()
    return tuple(s for s in pipeline if s not in specs or specs[s].reads_audio)


def stage_names() -> list[str]:
    """The installed stages' names, sorted."""
    return sorted(discover())
