"""A decode's result and the guards on its words: prefix removal, loop cutting, normalizing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shared.schemas import Word

# A word repeated this many times in a row is a decoding loop, not speech.
_MAX_REPEATS = 4


@dataclass(slots=True)
class Hypothesis:
    """One decode of an utterance's audio; word times are relative to the audio start."""

    words: list[Word] = field(default_factory=list)
    audio_s: float = 0.0
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    language: str | None = None
    dropped: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(w.word for w in self.words).strip()


_NORM = re.compile(r"[^\w']+")


def normalize_word(word: str) -> str:
    """Lowercase without punctuation, for comparing hypotheses."""
    return _NORM.sub("", word.lower())


def to_word(w: Any, offset: float = 0.0) -> Word:
    """A faster-whisper word as ours, its times shifted back by `offset` seconds."""
    return Word(
        word=w.word,
        start=round(max(0.0, float(w.start) - offset), 3),
        end=round(float(w.end) - offset, 3),
        probability=round(float(w.probability), 4),
    )


def words_after_prefix(spoken: list[Any], prefix: str) -> list[Any]:
    """The words after the forced `prefix`, or [] when they do not start with it."""
    want = "".join(normalize_word(w) for w in prefix.split())
    got = ""
    for i, w in enumerate(spoken):
        if got == want:
            return spoken[i:]
        got += normalize_word(w.word)
        if not want.startswith(got):
            return []
    return []


def cut_loops(words: list[Word]) -> list[Word]:
    """Truncate at the first n-gram (n <= 4) repeated more than _MAX_REPEATS times in a row."""
    norm = [normalize_word(w.word) for w in words]
    for i in range(len(norm)):
        for n in range(1, 5):
            gram = norm[i : i + n]
            if len(gram) < n:
                break
            repeats = 1
            j = i + n
            while norm[j : j + n] == gram:
                repeats += 1
                j += n
            if repeats > _MAX_REPEATS:
                return words[: i + n]
    return words
