"""The semantic stage's context window: the last final turns an annotation and an LLM see."""

from __future__ import annotations

from typing import Any

import msgspec

from shared.context_window import context_turns, render_context
from shared.schemas import Turn


class ContextWindow:
    """Final turns of the last `max_turns` and `max_seconds`, oldest first."""

    def __init__(
        self, max_turns: int, max_seconds: float, state: list[dict[str, Any]] | None = None
    ) -> None:
        self.max_turns = max_turns
        self.max_seconds = max_seconds
        self.turns: list[Turn] = [msgspec.convert(t, Turn) for t in state or []]

    def state(self) -> list[dict[str, Any]]:
        return [msgspec.to_builtins(t) for t in self.turns]

    def add(self, turn: Turn) -> None:
        """A turn went final; older turns fall out of the window."""
        self.turns = context_turns(
            [*self.turns, turn], max_turns=self.max_turns, max_seconds=self.max_seconds
        )

    def __len__(self) -> int:
        return len(self.turns)

    def holds(self, segment_id: str) -> bool:
        return any(segment_id in t.segment_ids for t in self.turns)

    def of_speaker(self, speaker_id: str | None, *, before: str) -> list[Turn]:
        """This speaker's turns in the window other than turn `before`, oldest first."""
        return [t for t in self.turns if t.speaker_id == speaker_id and t.id != before]

    def render(self) -> str:
        """The window as `[12.3s] spk_0: text` lines."""
        return render_context(self.turns, max_turns=self.max_turns, max_seconds=self.max_seconds)
