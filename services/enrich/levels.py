"""Level names and cut points: absolute prosody, speaker-relative z-scores, 0-1 emotion scores."""

from __future__ import annotations

from collections.abc import Sequence


def _level(value: float, cuts: Sequence[tuple[float, str]], top: str) -> str:
    # Every bound is exclusive above: value < cut gets that cut's name.
    for cut, name in cuts:
        if value < cut:
            return name
    return top


# Absolute cut points of the earlier single-process project (issue 15).
_PITCH_CUTS = ((80.0, "very_low"), (120.0, "low"), (180.0, "neutral"), (250.0, "high"))
_ENERGY_CUTS = ((-35.0, "very_quiet"), (-25.0, "quiet"), (-15.0, "normal"), (-8.0, "loud"))
_RATE_CUTS = ((3.0, "very_slow"), (4.5, "slow"), (5.5, "normal"), (7.0, "fast"))
# z < -1.5 much_lower, < -0.5 lower, < 0.5 typical, < 1.5 higher, else much_higher:
# "typical" is the middle standard deviation, "much_*" the outer ~7 % on each side.
_RELATIVE_CUTS = ((-1.5, "much_lower"), (-0.5, "lower"), (0.5, "typical"), (1.5, "higher"))
# Dimensional emotion (0-1 score): five equal bands, "neutral" in the middle.
_DIMENSION_CUTS = ((0.2, "very_low"), (0.4, "low"), (0.6, "neutral"), (0.8, "high"))


def pitch_level(mean_hz: float) -> str:
    return _level(mean_hz, _PITCH_CUTS, "very_high")


def energy_level(rms_db: float) -> str:
    return _level(rms_db, _ENERGY_CUTS, "very_loud")


def rate_level(syllables_per_s: float) -> str:
    return _level(syllables_per_s, _RATE_CUTS, "very_fast")


def relative_level(z: float) -> str:
    return _level(z, _RELATIVE_CUTS, "much_higher")


def dimension_level(score: float) -> str:
    return _level(score, _DIMENSION_CUTS, "very_high")
