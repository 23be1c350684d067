"""Speaker baselines: Welford statistics, z-scores against earlier segments, state round trip."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from services.enrich.baseline import Baselines, RunningStat
from services.enrich.levels import relative_level


def prosody(
    pitch: float | None = 150.0, energy: float = -20.0, rate: float = 5.0
) -> dict[str, Any]:
    return {
        "pitch": {"mean_hz": pitch, "range_st": None if pitch is None else 4.0},
        "energy": {"rms_db": energy},
        "rate": {"syllables_per_s": rate},
    }


def test_welford_matches_numpy() -> None:
    values = np.random.default_rng(1).normal(120.0, 15.0, size=50)
    stat = RunningStat()
    for v in values:
        stat.add(float(v))
    assert stat.n == 50
    assert stat.mean == pytest.approx(values.mean(), rel=1e-12)
    assert stat.std == pytest.approx(values.std(ddof=1), rel=1e-12)


def test_relative_is_null_with_reason_until_min_segments() -> None:
    baselines = Baselines(min_segments=3)
    for seen in range(3):
        relative, reason = baselines.score_and_add("spk_0", prosody())
        assert relative is None
        assert reason == f"speaker baseline has {seen} of 3 segments"
    relative, reason = baselines.score_and_add("spk_0", prosody())
    assert reason is None and relative is not None
    assert relative["baseline_segments"] == 3
    assert set(relative) >= {"pitch_hz", "energy_db", "syllables_per_s", "pitch_range_st"}


def test_segment_is_scored_against_earlier_segments_only() -> None:
    baselines = Baselines(min_segments=3)
    for hz in (100.0, 110.0, 120.0):  # mean 110, sample std 10
        baselines.score_and_add("a", prosody(pitch=hz))
    relative, _ = baselines.score_and_add("a", prosody(pitch=140.0))
    assert relative is not None
    assert relative["pitch_hz"]["z"] == pytest.approx(3.0)  # not diluted by itself
    assert relative["pitch_hz"]["level"] == "much_higher"
    assert relative["pitch_hz"]["baseline_mean"] == pytest.approx(110.0)
    # ...and it was added afterwards: the next segment sees four values.
    relative, _ = baselines.score_and_add("a", prosody(pitch=117.5))
    assert relative is not None
    assert relative["pitch_hz"]["baseline_mean"] == pytest.approx(117.5)
    assert relative["pitch_hz"]["z"] == pytest.approx(0.0)


def test_std_floor_keeps_identical_history_from_exploding_z() -> None:
    baselines = Baselines(min_segments=3)
    for _ in range(3):
        baselines.score_and_add("a", prosody(pitch=100.0, energy=-20.0))
    relative, _ = baselines.score_and_add("a", prosody(pitch=104.0, energy=-19.0))
    assert relative is not None
    assert relative["pitch_hz"]["z"] == pytest.approx(0.8)  # 4 Hz over the 5 Hz floor
    assert relative["energy_db"]["z"] == pytest.approx(1.0)  # 1 dB over the 1 dB floor


def test_speakers_have_separate_baselines() -> None:
    baselines = Baselines(min_segments=1)
    baselines.score_and_add("low", prosody(pitch=90.0))
    baselines.score_and_add("high", prosody(pitch=220.0))
    low, _ = baselines.score_and_add("low", prosody(pitch=90.0))
    high, _ = baselines.score_and_add("high", prosody(pitch=220.0))
    assert low is not None and high is not None
    assert low["pitch_hz"]["level"] == high["pitch_hz"]["level"] == "typical"


def test_missing_feature_is_neither_scored_nor_added() -> None:
    baselines = Baselines(min_segments=2)
    baselines.score_and_add("a", prosody(pitch=None))
    baselines.score_and_add("a", prosody(pitch=100.0))
    relative, _ = baselines.score_and_add("a", prosody(pitch=100.0))
    assert relative is not None
    assert "pitch_hz" not in relative  # one pitch value so far, two needed
    assert "energy_db" in relative
    assert baselines.speakers["a"].stats["pitch_hz"].n == 2


@pytest.mark.parametrize(
    ("z", "level"),
    [(-2.0, "much_lower"), (-1.5, "lower"), (-0.6, "lower"), (-0.5, "typical"), (0.49, "typical"),
     (0.5, "higher"), (1.49, "higher"), (1.5, "much_higher")],
)  # fmt: skip
def test_relative_cut_points(z: float, level: str) -> None:
    assert relative_level(z) == level


def _stream(n: int) -> list[tuple[str, dict[str, Any]]]:
    rng = np.random.default_rng(5)
    return [
        (
            f"spk_{i % 2}",
            prosody(float(rng.normal(150, 20)), float(rng.normal(-20, 4)), float(rng.normal(5, 1))),
        )
        for i in range(n)
    ]


def test_restored_state_continues_exactly_like_uninterrupted() -> None:
    stream = _stream(20)
    whole = Baselines(min_segments=3)
    uninterrupted = [whole.score_and_add(s, p) for s, p in stream]

    first = Baselines(min_segments=3)
    before = [first.score_and_add(s, p) for s, p in stream[:9]]
    # The checkpoint goes through JSON, as it will in Redis.
    state = json.loads(json.dumps(first.to_state()))
    resumed = Baselines.from_state(state, min_segments=3)
    after = [resumed.score_and_add(s, p) for s, p in stream[9:]]
    assert before + after == uninterrupted
    assert json.dumps(resumed.to_state()) == json.dumps(whole.to_state())


def test_unknown_state_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        Baselines.from_state({"version": 99, "speakers": {}}, min_segments=3)
