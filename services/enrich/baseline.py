"""Running per-speaker prosody baselines (Welford) and speaker-relative z-scores and levels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from services.enrich.levels import relative_level

STATE_VERSION = 1

# Feature name -> (path in the prosody dict, smallest standard deviation used for z-scores).
# The floors keep a speaker whose first segments happen to be near-identical (synthetic
# or read speech) from turning a barely audible change into |z| > 1.5; each is about
# one just-noticeable difference of that feature.
FEATURES: dict[str, tuple[tuple[str, str], float]] = {
    "pitch_hz": (("pitch", "mean_hz"), 5.0),  # ~0.5 semitone at 150 Hz
    "pitch_range_st": (("pitch", "range_st"), 0.5),
    "energy_db": (("energy", "rms_db"), 1.0),  # ~1 dB loudness JND
    "syllables_per_s": (("rate", "syllables_per_s"), 0.25),
}


@dataclass(slots=True)
class RunningStat:
    """Welford's online mean and variance: one pass, numerically stable, O(1) state."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1); 0 before two values."""
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0


def feature_values(prosody: dict[str, Any]) -> dict[str, float]:
    """The baseline features present (not None) in one segment's absolute prosody."""
    values: dict[str, float] = {}
    for name, ((group, key), _floor) in FEATURES.items():
        value = (prosody.get(group) or {}).get(key)
        if value is not None and math.isfinite(value):
            values[name] = float(value)
    return values


class SpeakerBaseline:
    """One speaker's running statistics per feature, and how many segments fed them."""

    def __init__(self) -> None:
        self.segments = 0
        self.stats: dict[str, RunningStat] = {name: RunningStat() for name in FEATURES}

    def add(self, values: dict[str, float]) -> None:
        self.segments += 1
        for name, value in values.items():
            self.stats[name].add(value)

    def score(self, values: dict[str, float], min_segments: int) -> dict[str, Any]:
        """z-scores and relative levels for each feature with >= `min_segments` earlier values."""
        out: dict[str, Any] = {}
        for name, value in values.items():
            stat = self.stats[name]
            if stat.n < min_segments:
                continue
            z = (value - stat.mean) / max(stat.std, FEATURES[name][1])
            out[name] = {
                "z": round(z, 3),
                "level": relative_level(z),
                "baseline_mean": round(stat.mean, 3),
            }
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "segments": self.segments,
            "stats": {k: [s.n, s.mean, s.m2] for k, s in self.stats.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SpeakerBaseline:
        baseline = cls()
        baseline.segments = int(state["segments"])
        for name, (n, mean, m2) in state["stats"].items():
            if name in baseline.stats:  # a feature dropped in a later version is ignored
                baseline.stats[name] = RunningStat(int(n), float(mean), float(m2))
        return baseline


class Baselines:
    """Every speaker's baseline in one session; the state goes into the stage checkpoint.

    A segment is scored against the baseline of the speaker's *earlier* segments and only
    then added: a segment is never compared with itself, and the first `min_segments`
    segments of a speaker have no relative levels (the reason says how many are missing).
    """

    def __init__(self, min_segments: int) -> None:
        self.min_segments = min_segments
        self.speakers: dict[str, SpeakerBaseline] = {}

    def score_and_add(
        self, speaker: str, prosody: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, str | None]:
        """(relative prosody, None) of this segment, or (None, reason) while warming up.

        The segment is scored before it is added to the speaker's baseline.
        """
        baseline = self.speakers.setdefault(speaker, SpeakerBaseline())
        values = feature_values(prosody)
        relative: dict[str, Any] | None = None
        reason: str | None = None
        if baseline.segments < self.min_segments:
            reason = f"speaker baseline has {baseline.segments} of {self.min_segments} segments"
        else:
            relative = {
                "baseline_segments": baseline.segments,
                **baseline.score(values, self.min_segments),
            }
        baseline.add(values)
        return relative, reason

    def to_state(self) -> dict[str, Any]:
        """JSON-serializable; floats round-trip exactly through JSON (repr is shortest-exact)."""
        return {
            "version": STATE_VERSION,
            "speakers": {k: b.to_state() for k, b in self.speakers.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, min_segments: int) -> Baselines:
        baselines = cls(min_segments)
        if state:
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"unknown baseline state version {state.get('version')!r}")
            for speaker, s in state["speakers"].items():
                baselines.speakers[speaker] = SpeakerBaseline.from_state(s)
        return baselines
