"""The seq reorder window: duplicates, late frames within the window, gaps, flush at stop."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from services.ingest.reorder import Gap, ReorderBuffer


def _seqs(released: Sequence[tuple[int, object]]) -> list[int]:
    return [seq for seq, _ in released]


def test_in_order_frames_pass_straight_through() -> None:
    buffer: ReorderBuffer[str] = ReorderBuffer(window=4)
    for seq in (1, 2, 3):
        released = buffer.push(seq, f"f{seq}")
        assert released.frames == [(seq, f"f{seq}")] and not released.gaps
    assert buffer.expected == 4


def test_out_of_order_within_window_is_released_in_order() -> None:
    buffer: ReorderBuffer[str] = ReorderBuffer(window=4)
    assert buffer.push(3, "c").frames == []
    assert buffer.push(2, "b").frames == []
    released = buffer.push(1, "a")
    assert released.frames == [(1, "a"), (2, "b"), (3, "c")] and not released.gaps


def test_duplicates_are_recognised() -> None:
    buffer: ReorderBuffer[str] = ReorderBuffer(window=4)
    buffer.push(1, "a")
    buffer.push(3, "c")
    assert buffer.is_duplicate(1)  # already released
    assert buffer.is_duplicate(3)  # waiting in the buffer
    assert not buffer.is_duplicate(2)


def test_gap_beyond_window_is_reported_and_skipped() -> None:
    buffer: ReorderBuffer[str] = ReorderBuffer(window=3)
    buffer.push(1, "a")
    for seq in (4, 5, 6):
        assert buffer.push(seq, str(seq)).frames == []
    released = buffer.push(7, "7")  # a fourth frame waits: 2 and 3 are not coming
    assert released.gaps == [Gap(2, 3)]
    assert _seqs(released.frames) == [4, 5, 6, 7]
    assert buffer.is_duplicate(2), "a frame that finally arrives after the gap is dropped"


def test_flush_releases_everything_in_order_with_gaps() -> None:
    buffer: ReorderBuffer[str] = ReorderBuffer(window=8)
    buffer.push(1, "a")
    buffer.push(5, "e")
    buffer.push(3, "c")
    released = buffer.flush()
    assert _seqs(released.frames) == [3, 5]
    assert released.gaps == [Gap(2, 2), Gap(4, 4)]
    assert buffer.buffered == {}


@given(
    arrivals=st.lists(st.integers(1, 40), max_size=80),
    window=st.integers(0, 6),
)
def test_any_arrival_order_releases_each_seq_once_in_order(
    arrivals: list[int], window: int
) -> None:
    buffer: ReorderBuffer[int] = ReorderBuffer(window=window)
    released: list[int] = []
    gaps: list[Gap] = []
    for seq in arrivals:
        if buffer.is_duplicate(seq):
            continue
        out = buffer.push(seq, seq)
        assert len(buffer.buffered) <= window
        released += _seqs(out.frames)
        gaps += out.gaps
    out = buffer.flush()
    released += _seqs(out.frames)
    gaps += out.gaps
    assert released == sorted(set(released)), "strictly increasing, no repeats"
    assert set(released) <= set(arrivals)
    missing = {s for g in gaps for s in range(g.first, g.last + 1)}
    assert not missing & set(released)
    top = max(released, default=0)
    assert missing | set(released) == set(range(1, top + 1)), "gaps + frames cover 1..max"
