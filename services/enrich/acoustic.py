"""Acoustic arousal from speaker-relative pitch, energy and rate, when no emotion model is set."""

from __future__ import annotations

import math
from typing import Any

from services.enrich.levels import dimension_level

# Weights of the speaker-relative z-scores: loudness and F0 level are the strongest acoustic
# correlates of arousal, speaking rate a weaker one (Juslin & Laukka 2003, Table 7; Schuller
# et al. 2011). Renormalized over the features present in a segment.
WEIGHTS = {"energy_db": 0.4, "pitch_hz": 0.35, "syllables_per_s": 0.25}

NO_MODEL_REASON = (
    "no emotion model configured: valence, dominance and categorical emotion are not "
    "estimated; arousal is an acoustic estimate"
)


def acoustic_emotion(
    relative: dict[str, Any] | None, relative_reason: str | None
) -> dict[str, Any]:
    """The emotion block without a model: arousal from z-scores only, everything else null.

    The estimate is speaker-relative by design: absolute pitch mostly encodes sex and age,
    not arousal, so before the speaker's baseline exists arousal is null with the reason
    (an absolute guess would call every high voice aroused).
    """
    block: dict[str, Any] = {
        "source": "acoustic",
        "arousal": None,
        "valence": None,
        "dominance": None,
        "categorical": None,
        "reason": NO_MODEL_REASON,
    }
    if relative is None:
        block["arousal_reason"] = f"no speaker baseline yet ({relative_reason})"
        return block
    used = {k: relative[k]["z"] for k in WEIGHTS if k in relative}
    if not used.keys() & {"energy_db", "pitch_hz"}:
        block["arousal_reason"] = "neither pitch nor energy measured in this segment"
        return block
    total = sum(WEIGHTS[k] for k in used)
    z = sum(WEIGHTS[k] * used[k] for k in used) / total
    # Logistic: the speaker's typical delivery is 0.5; one standard deviation up is 0.73.
    score = 1.0 / (1.0 + math.exp(-z))
    block["arousal"] = {
        "score": round(score, 4),
        "level": dimension_level(score),
        "z": round(z, 3),
        "features": sorted(used),
    }
    return block
