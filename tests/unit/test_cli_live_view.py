"""The demo's terminal view: in place on a terminal, finals and periodic progress otherwise."""

from __future__ import annotations

import io

import msgspec

from shared.schemas import (
    DonePayload,
    EnrichmentPayload,
    ErrorPayload,
    Segment,
    SemanticAnnotation,
    Turn,
)
from streamscribe.live_view import LiveView, final_line
from streamscribe.producer import PushProgress


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def seg(text: str, start: float, end: float, *, partial: bool = False, **kw) -> Segment:
    return Segment(id=f"seg{start}", start=start, end=end, text=text, partial=partial, **kw)


def progress(audio_s: float, sent_at: float, *, finished: bool = False) -> PushProgress:
    return PushProgress(
        session_id="s-1",
        frames_sent=int(audio_s * 50),
        audio_sent_s=audio_s,
        total_s=10.0,
        elapsed_s=audio_s,
        sent_at=sent_at,
        finished=finished,
    )


def test_final_line_format() -> None:
    assert final_line(seg(" hello there ", 12.34, 13, speaker_id="spk_0")) == (
        "[12.3s spk_0] hello there"
    )
    assert final_line(seg("hi", 1.0, 2.0, channel=1)) == "[1.0s ch1] hi"
    assert final_line(seg("hi", 1.0, 2.0)) == "[1.0s] hi"


def test_not_a_tty_prints_finals_and_progress_every_few_seconds() -> None:
    out, clock, wall = io.StringIO(), Clock(), Clock(1000.0)
    view = LiveView(out, tty=False, progress_every_s=5.0, clock=clock, wall_clock=wall)
    for i in range(1, 301):  # 6 s of frames, 20 ms each, over 6 s
        clock.now = wall.now - 1000.0
        view.on_push_progress(progress(i * 0.02, wall.now))
        if i == 100:
            view.on_partial_segment(seg("hel", 0.5, 1.5, partial=True))
            wall.now += 0.25  # the final arrives 0.25 s after its last audio was sent
            view.on_segment_finalized(seg("hello", 0.5, 2.0))
            wall.now -= 0.25
        wall.now += 0.02
    view.on_segment_finalized(seg("   ", 3.0, 4.0))  # noise-only final: not shown
    view.on_error(ErrorPayload(code="gap", message="frames 4-5 missing", stage="ingest"), True)
    view.on_done(DonePayload(duration_s=6.0, segments=1))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines[0].startswith("progress: pushed 0.0/10.0s, 0 finals")
    assert "[0.5s] hello" in lines
    assert sum(line.startswith("progress:") for line in lines) == 2  # at 0 s and 5 s
    assert "warning (ingest/gap): frames 4-5 missing" in lines
    assert lines[-1] == "done: 1 segments, 6.0s of audio (stopped)"
    assert view.finals == 1
    assert view.last_latency_s is not None and abs(view.last_latency_s - 0.25) < 1e-6


def test_tty_redraws_one_line_in_place_and_prints_finals_above_it() -> None:
    out, clock = io.StringIO(), Clock()
    view = LiveView(out, tty=True, clock=clock, wall_clock=Clock(5.0), width=60)
    view.on_push_progress(progress(1.0, 4.0))
    view.on_partial_segment(seg("a partial that is far too long to fit on the line", 0, 1))
    view.on_segment_finalized(seg("final words", 0.0, 1.0, speaker_id="spk_1"))
    view.close()
    text = out.getvalue()
    assert "\r\x1b[2K" in text
    # Everything drawn in place fits the width; finals are whole lines of their own.
    for chunk in text.split("\r\x1b[2K"):
        for line in chunk.split("\n"):
            assert len(line) <= 59
    assert "\n[0.0s spk_1] final words\n" in text.replace("\r\x1b[2K", "\n")
    # A partial too long for the line keeps its newest words.
    assert "0 finals) ...too long to fit on the line\r" in text
    assert text.endswith("pushed 1.0/10.0s, 1 finals, last final latency 1.00s\n")


def test_enrichment_and_flagged_turns_print_under_the_finals() -> None:
    out = io.StringIO()
    view = LiveView(out, tty=False, progress_every_s=1e9)
    view.on_segment_finalized(seg("I want to cancel", 1.0, 2.0, speaker_id="spk_1"))
    view.on_segment_enriched(
        EnrichmentPayload(segment_id="seg1.0", audio_state={"rendering": "[audio: loud, fast]"})
    )
    turn = Turn(id="turn:seg1.0", speaker_id="spk_1", start=1.0, end=2.0, text="x", partial=False)
    view.on_semantic_update(SemanticAnnotation(turn=turn, risk_tags=["churn_risk"]))
    interim = msgspec.structs.replace(turn, partial=True)
    view.on_semantic_update(SemanticAnnotation(turn=interim, risk_tags=["churn_risk"]))
    view.on_semantic_update(SemanticAnnotation(turn=turn))  # nothing to flag
    lines = [line for line in out.getvalue().splitlines() if not line.startswith("progress")]
    assert lines == [
        "[1.0s spk_1] I want to cancel",
        "    [audio: loud, fast]",
        "    spk_1 turn: risk churn_risk",
    ]
