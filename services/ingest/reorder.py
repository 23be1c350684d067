"""The seq window: drop duplicates, reorder late frames, report what never arrived."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Gap:
    """Frames `first`..`last` (inclusive) never arrived in time; the stream moved past them."""

    first: int
    last: int


@dataclass(slots=True)
class Released(Generic[T]):
    """Frames now in order (seq, item) and the gaps skipped to release them."""

    frames: list[tuple[int, T]] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)


class ReorderBuffer(Generic[T]):
    """Releases frames in seq order, holding at most `window` frames that arrived early."""

    def __init__(
        self, window: int, expected: int = 1, buffered: dict[int, T] | None = None
    ) -> None:
        self.window = max(window, 0)
        self.expected = expected
        self._buffered: dict[int, T] = dict(buffered or {})

    @property
    def buffered(self) -> dict[int, T]:
        """Frames waiting for a predecessor, by seq (a copy)."""
        return dict(self._buffered)

    def is_duplicate(self, seq: int) -> bool:
        """Already released, passed over, or already waiting in the buffer."""
        return seq < self.expected or seq in self._buffered

    def push(self, seq: int, item: T) -> Released[T]:
        """Accept a frame that is not a duplicate; returns whatever it lets through."""
        if self.is_duplicate(seq):
            raise ValueError(f"seq {seq} is a duplicate; check is_duplicate first")
        self._buffered[seq] = item
        released: Released[T] = Released()
        self._release_run(released)
        # Too many frames wait on a predecessor: it is not coming within the window.
        while len(self._buffered) > self.window:
            self._skip_to_smallest(released)
            self._release_run(released)
        return released

    def flush(self) -> Released[T]:
        """Release everything buffered in seq order (end of stream), reporting gaps."""
        released: Released[T] = Released()
        while self._buffered:
            self._skip_to_smallest(released)
            self._release_run(released)
        return released

    def _release_run(self, released: Released[T]) -> None:
        while self.expected in self._buffered:
            released.frames.append((self.expected, self._buffered.pop(self.expected)))
            self.expected += 1

    def _skip_to_smallest(self, released: Released[T]) -> None:
        smallest = min(self._buffered)
        if smallest > self.expected:
            released.gaps.append(Gap(self.expected, smallest - 1))
            self.expected = smallest
