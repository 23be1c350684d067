"""The one-line rendering of a segment's audio state: `[audio: high pitch, loud, fast]`."""

from __future__ import annotations

from typing import Any

_LEVELS = ("very_low", "low", "high", "very_high")
_PITCH = {lv: f"{lv.replace('_', ' ')} pitch" for lv in _LEVELS}
_ENERGY = {"very_quiet": "very quiet", "quiet": "quiet", "loud": "loud", "very_loud": "very loud"}
_RATE = {"very_slow": "very slow", "slow": "slow", "fast": "fast", "very_fast": "very fast"}
# Only the outer relative bands (|z| >= 1.5) are salient enough to mention: (higher, lower).
_RELATIVE = {
    "pitch_hz": ("pitch much higher than usual", "pitch much lower than usual"),
    "energy_db": ("much louder than usual", "much quieter than usual"),
    "syllables_per_s": ("much faster than usual", "much slower than usual"),
}
_AROUSAL = {lv: f"{lv.replace('_', ' ')} arousal" for lv in _LEVELS}
_VALENCE = {"very_low": "very negative", "low": "negative", "high": "positive"}
_VALENCE["very_high"] = "very positive"
# A categorical label is named only when the model is fairly sure of it.
_MIN_CONFIDENCE = 0.5


def render(prosody: dict[str, Any] | None, emotion: dict[str, Any] | None) -> str:
    """Only what stands out; `[audio: neutral]` when nothing does (or nothing was measured).

    Pitch: once the speaker has a baseline, only the speaker-relative extremes are named
    (absolute pitch mostly says who is speaking, not how); before, the absolute level.
    Energy and rate: the absolute level when not normal, plus relative extremes. A rising
    contour is named (questions, continuation); falling is the default of statements.
    Acoustic arousal says so: "(acoustic)".
    """
    parts: list[str] = []
    if prosody:
        relative = prosody.get("relative") or {}
        pitch = prosody.get("pitch") or {}
        levels = [
            (_PITCH, None if relative else pitch.get("level")),
            (_ENERGY, (prosody.get("energy") or {}).get("level")),
            (_RATE, (prosody.get("rate") or {}).get("level")),
        ]
        parts += [names[level] for names, level in levels if level in names]
        for feature, (higher, lower) in _RELATIVE.items():
            level = (relative.get(feature) or {}).get("level")
            if level in ("much_higher", "much_lower"):
                parts.append(higher if level == "much_higher" else lower)
        if pitch.get("contour") == "rising":
            parts.append("rising pitch")
    if emotion:
        suffix = " (acoustic)" if emotion.get("source") == "acoustic" else ""
        arousal = (emotion.get("arousal") or {}).get("level")
        if arousal in _AROUSAL:
            parts.append(_AROUSAL[arousal] + suffix)
        valence = (emotion.get("valence") or {}).get("level")
        if valence in _VALENCE:
            parts.append(_VALENCE[valence])
        categorical = emotion.get("categorical") or {}
        primary = categorical.get("primary")
        confident = categorical.get("confidence", 0.0) >= _MIN_CONFIDENCE
        if primary and confident and str(primary).lower() not in ("neutral", "neu", "calm"):
            parts.append(str(primary).lower())
    return f"[audio: {', '.join(parts) if parts else 'neutral'}]"
