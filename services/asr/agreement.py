"""LocalAgreement-2: a word is stable once two consecutive hypotheses agree on it."""

from __future__ import annotations

from services.asr.hypothesis import normalize_word
from shared.schemas import Word


def common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class LocalAgreement:
    """Tracks the confirmed prefix of one utterance across its partial hypotheses.

    Confirmed words are kept verbatim (text and timing) so the shown text never flickers;
    the unconfirmed tail is whatever the newest hypothesis says after them.
    """

    def __init__(self) -> None:
        self.stable: list[Word] = []
        self._previous: list[Word] = []

    def update(self, words: list[Word]) -> list[Word]:
        """Feed a hypothesis (absolute times); returns the words to show."""
        agreed = common_prefix(
            [normalize_word(w.word) for w in self._previous],
            [normalize_word(w.word) for w in words],
        )
        if agreed > len(self.stable):
            # Confirmed words keep the spelling they were first shown with.
            self.stable = self.stable + self._previous[len(self.stable) : agreed]
        self._previous = list(words)
        return self.stable + self.tail(words)

    def tail(self, words: list[Word]) -> list[Word]:
        """The part of `words` after the stable prefix, aligned by time, not by count."""
        if not self.stable:
            return list(words)
        boundary = self.stable[-1].end - 0.05
        return [w for w in words if w.start >= boundary]

    def stable_chars(self) -> int:
        return len(join_words(self.stable))


def join_words(words: list[Word]) -> str:
    return "".join(w.word for w in words).strip()
