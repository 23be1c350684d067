"""Render a conversation's recent turns as an LLM-ready context: `[12.3s] spk_0: text` lines."""

from __future__ import annotations

from collections.abc import Sequence

from shared.schemas import Turn

DEFAULT_MAX_TURNS = 10
DEFAULT_MAX_SECONDS = 120.0
# Mono sessions without diarization carry no speaker id: they are one speaker.
_MONO_SPEAKER = "spk_0"


def context_turns(
    turns: Sequence[Turn],
    *,
    max_turns: int = DEFAULT_MAX_TURNS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> list[Turn]:
    """The window: turns ending within `max_seconds` of the latest end, the last `max_turns`.

    Turns are ordered by start (then speaker), whatever order they come in; turns
    without text are left out.
    """
    spoken = sorted(
        (t for t in turns if t.text.strip()),
        key=lambda t: (t.start, t.speaker_id or _MONO_SPEAKER, t.id),
    )
    if not spoken or max_turns <= 0:
        return []
    cutoff = max(t.end for t in spoken) - max_seconds
    recent = [t for t in spoken if t.end >= cutoff]
    return recent[-max_turns:]


def render_context(
    turns: Sequence[Turn],
    *,
    max_turns: int = DEFAULT_MAX_TURNS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> str:
    """The context window as text, one `[start s] speaker: text` line per turn."""
    window = context_turns(turns, max_turns=max_turns, max_seconds=max_seconds)
    return "\n".join(
        f"[{t.start:.1f}s] {t.speaker_id or _MONO_SPEAKER}: {t.text.strip()}" for t in window
    )
