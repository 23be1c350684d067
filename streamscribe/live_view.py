"""The demo's terminal view: partials updating in place, finals as lines, a progress line."""

from __future__ import annotations

import bisect
import shutil
import time
from collections.abc import Callable
from typing import TextIO

from shared.schemas import DonePayload, EnrichmentPayload, ErrorPayload, Segment, SemanticAnnotation
from streamscribe.producer import PushProgress

_CLEAR_LINE = "\r\x1b[2K"
# In place, a redraw per pushed frame (50/s) would only burn the terminal.
_REDRAW_EVERY_S = 0.1


def final_line(segment: Segment) -> str:
    """`[12.3s spk_0] text` (the speaker part only when the segment has one)."""
    speaker = segment.speaker_id or (f"ch{segment.channel}" if segment.channel is not None else "")
    label = f"{segment.start:.1f}s {speaker}".rstrip()
    return f"[{label}] {segment.text.strip()}"


def annotation_line(annotation: SemanticAnnotation) -> str | None:
    """`    spk_0 turn: risk churn_risk; action "I'll send ..."; 1 question` for a final
    turn with something to flag, else None (interim updates and plain turns stay quiet)."""
    if annotation.turn.partial:
        return None
    parts = []
    if annotation.risk_tags:
        parts.append("risk " + ", ".join(annotation.risk_tags))
    parts.extend(f'action "{a.text}"' for a in annotation.actions)
    if annotation.question_count:
        s = "s" if annotation.question_count > 1 else ""
        parts.append(f"{annotation.question_count} question{s}")
    if not parts:
        return None
    return f"    {annotation.turn.speaker_id or 'spk_0'} turn: " + "; ".join(parts)


class LiveView:
    """StreamCallbacks plus push progress, rendered to `out`.

    On a terminal (`tty`) the last line is redrawn in place: progress and the newest
    partial text. Otherwise only finals are printed, with a progress line every
    `progress_every_s`, so a log file stays readable.
    """

    def __init__(
        self,
        out: TextIO,
        *,
        tty: bool,
        progress_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        width: int | None = None,
    ) -> None:
        self.out = out
        self.tty = tty
        self.progress_every_s = progress_every_s
        self._clock = clock
        self._wall = wall_clock
        self._width = width
        self.finals = 0
        self.pushed_s = 0.0
        self.total_s: float | None = None
        self.last_latency_s: float | None = None
        self.partial_text = ""
        # (audio seconds pushed, wall time of that send): when a final's audio arrived.
        self._sent_audio: list[float] = []
        self._sent_at: list[float] = []
        self._last_draw = float("-inf")
        self._status_shown = False

    # --- producer side ---------------------------------------------------------------------

    def on_push_progress(self, progress: PushProgress) -> None:
        self.pushed_s = progress.audio_sent_s
        self.total_s = progress.total_s
        self._sent_audio.append(progress.audio_sent_s)
        self._sent_at.append(progress.sent_at)
        self._maybe_draw(force=progress.finished)

    # --- StreamCallbacks ------------------------------------------------------------------

    def on_partial_segment(self, segment: Segment) -> None:
        self.partial_text = final_line(segment)
        self._maybe_draw(force=True)

    def on_segment_finalized(self, segment: Segment) -> None:
        self.partial_text = ""
        if not segment.text.strip():
            return
        self.finals += 1
        self.last_latency_s = self._latency_s(segment.end)
        self._print_line(final_line(segment))

    def on_segment_enriched(self, payload: EnrichmentPayload) -> None:
        rendering = (payload.audio_state or {}).get("rendering")
        if rendering:
            self._print_line(f"    {rendering}")

    def on_semantic_update(self, annotation: SemanticAnnotation) -> None:
        line = annotation_line(annotation)
        if line:
            self._print_line(line)

    def on_error(self, error: ErrorPayload, recoverable: bool) -> None:
        kind = "warning" if recoverable else "error"
        self._print_line(f"{kind} ({error.stage}/{error.code}): {error.message}")

    def on_done(self, payload: DonePayload) -> None:
        self.partial_text = ""
        self._print_line(
            f"done: {payload.segments} segments, {payload.duration_s:.1f}s of audio "
            f"({payload.reason})"
        )

    # --- rendering ----------------------------------------------------------------------

    def progress_text(self) -> str:
        total = f"/{self.total_s:.1f}" if self.total_s else ""
        latency = (
            f", last final latency {self.last_latency_s:.2f}s"
            if self.last_latency_s is not None
            else ""
        )
        return f"pushed {self.pushed_s:.1f}{total}s, {self.finals} finals{latency}"

    def _latency_s(self, audio_end_s: float) -> float | None:
        """Seconds from when the segment's last audio was pushed until its final arrived."""
        i = bisect.bisect_left(self._sent_audio, audio_end_s - 1e-6)
        if i >= len(self._sent_at):
            return None
        return max(0.0, self._wall() - self._sent_at[i])

    def _print_line(self, line: str) -> None:
        if self.tty and self._status_shown:
            self.out.write(_CLEAR_LINE)
            self._status_shown = False
        self.out.write(line + "\n")
        self._maybe_draw(force=True)
        self.out.flush()

    def _maybe_draw(self, *, force: bool = False) -> None:
        now = self._clock()
        if self.tty:
            if not force and now - self._last_draw < _REDRAW_EVERY_S:
                return
            width = (self._width or shutil.get_terminal_size().columns) - 1
            status = f"({self.progress_text()})"
            if self.partial_text:
                room = width - len(status) - 1
                # The newest words are at the end of a partial: cut from the front.
                shown = self.partial_text
                if len(shown) > room:
                    shown = "..." + shown[len(shown) - max(room - 3, 0) :]
                status = f"{status} {shown}"
            self.out.write(_CLEAR_LINE + status[: max(width, 10)])
            self._status_shown = True
            self.out.flush()
        elif now - self._last_draw >= self.progress_every_s:
            self.out.write(f"progress: {self.progress_text()}\n")
            self.out.flush()
        else:
            return
        self._last_draw = now

    def close(self) -> None:
        """End the in-place line so the next output starts on a fresh one."""
        if self.tty and self._status_shown:
            self.out.write(_CLEAR_LINE + self.progress_text() + "\n")
            self._status_shown = False
            self.out.flush()
