"""The LLM context window: `[12.3s] spk_0: text` lines of the last N turns and T seconds."""

from __future__ import annotations

import subprocess
import sys

from shared.context_window import render_context
from shared.schemas import Turn


def turn(tid: str, speaker: str | None, start: float, end: float, text: str) -> Turn:
    return Turn(id=tid, speaker_id=speaker, start=start, end=end, text=text, partial=False)


def test_lines_name_start_speaker_and_text_in_start_order() -> None:
    turns = [
        turn("t2", "spk_1", 3.5, 5.0, "Sure, I'll do it by Friday."),
        turn("t1", "spk_0", 0.0, 3.0, "Can you review the proposal?"),
        turn("t3", None, 12.34, 14.0, "  Mono speech.  "),
    ]
    assert render_context(turns) == (
        "[0.0s] spk_0: Can you review the proposal?\n"
        "[3.5s] spk_1: Sure, I'll do it by Friday.\n"
        "[12.3s] spk_0: Mono speech."
    )


def test_only_the_last_max_turns_are_kept() -> None:
    turns = [turn(f"t{i}", "spk_0", i * 5.0, i * 5.0 + 4.0, f"turn {i}") for i in range(15)]
    lines = render_context(turns, max_turns=10).splitlines()
    assert len(lines) == 10
    assert lines[0] == "[25.0s] spk_0: turn 5"
    assert lines[-1] == "[70.0s] spk_0: turn 14"


def test_only_turns_ending_within_max_seconds_of_the_latest_are_kept() -> None:
    turns = [
        turn("old", "spk_0", 0.0, 10.0, "long ago"),
        turn("mid", "spk_1", 100.0, 110.0, "a while ago"),
        turn("new", "spk_0", 200.0, 229.0, "just now"),
    ]
    assert render_context(turns, max_seconds=120.0).splitlines() == [
        "[100.0s] spk_1: a while ago",
        "[200.0s] spk_0: just now",
    ]


def test_empty_turns_and_empty_input_render_nothing() -> None:
    assert render_context([]) == ""
    assert render_context([turn("t", "spk_0", 0.0, 1.0, " ")]) == ""


def test_the_module_imports_without_the_services() -> None:
    code = (
        "import sys, shared.context_window; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'services'], sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
