"""Words of a transcript: tokens with spans, a small suffix-stripping lemmatizer, stopwords."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

# Letters and digits, with inner apostrophes ("i'll") and hyphens ("follow-up"); ASR
# emits both kinds of quote.
_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")

DETERMINERS = frozenset(
    {"a", "an", "the", "your", "my", "our", "their", "his", "her", "this", "that", "some"}
)

STOPWORDS = frozenset(
    str.split(
        """
    a about above after again against all also am an and any are aren't as at be because
    been before being below between both but by can can't could couldn't did didn't do
    does doesn't doing don't down during each few for from further get got had hadn't has
    hasn't have haven't having he he'd he'll he's her here here's hers herself him himself
    his how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let let's
    like me more most much must mustn't my myself need no nor not now of off on once only or
    other ought our ours ourselves out over own please really right same say see she she'd
    she'll she's should shouldn't so some such sure than thank thanks that that's the their
    theirs them themselves then there there's these they they'd they'll they're they've
    thing things think this those through to too under until up us very was wasn't we we'd
    we'll we're we've well were weren't what what's when when's where where's which while
    who who's whom why why's will with won't would wouldn't yes yeah yep you you'd you'll
    you're you've your yours yourself yourselves okay ok um uh oh hi hello hey alright
    going gonna want wanna know actually sorry mean meant one two just kind sort
        great good fine perfect
    """
    )
)

# Past forms the suffix rules cannot reach, mapped to what the rules make of the base form.
_IRREGULAR = {
    "went": "go",
    "gone": "go",
    "sent": "send",
    "paid": "pay",
    "said": "say",
    "told": "tell",
    "spoke": "speak",
    "spoken": "speak",
    "bought": "buy",
    "left": "leave",
    "got": "get",
    "took": "take",
    "taken": "take",
    "made": "make",
}


@dataclass(frozen=True, slots=True)
class Token:
    """A lowercased word and where it sits in the text it came from."""

    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Word tokens of `text`, lowercased, with character spans into `text`."""
    lowered = text.lower().replace("\u2019", "'")
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(lowered)]


def words(text: str) -> list[str]:
    return [t.text for t in tokenize(text)]


def _normalize(stem: str) -> str:
    # A final "e" and a doubled consonant are spelling, not meaning: price/pric(ing),
    # cancel/cancell(ed), bill/bill(ing) all meet at one form.
    if len(stem) > 3 and stem.endswith("e"):
        stem = stem[:-1]
    if len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "aeiou":
        stem = stem[:-1]
    return stem


def _has_vowel(stem: str) -> bool:
    return any(c in "aeiouy" for c in stem)


@lru_cache(maxsize=65536)
def lemmas(word: str) -> frozenset[str]:
    """Forms `word` may be an inflection of; two words share a lemma when the sets meet.

    Deterministic suffix stripping, not a dictionary: plural -s/-ies, then one of -ation,
    -ing, -ed, then spelling normalization. "-ation" yields both its stem and stem+"ate"
    (cancellation -> cancel; escalation -> escalate). Derivations that change meaning
    ("priceless", "costly") keep their own form, so "price" never matches "priceless".
    """
    w = word.lower()
    if w.endswith("'s"):
        w = w[:-2]
    if w in _IRREGULAR:
        w = _IRREGULAR[w]
    if len(w) <= 3 or not w.isalpha():
        return frozenset({w})
    if w.endswith(("ies", "ied")) and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    forms = [w]
    for suffix in ("ation", "ing", "ed"):
        stem = w[: -len(suffix)]
        if w.endswith(suffix) and len(stem) >= 3 and _has_vowel(stem):
            forms = [stem, stem + "ate"] if suffix == "ation" else [stem]
            break
    return frozenset(_normalize(f) for f in forms)


def lemma(word: str) -> str:
    """One canonical form of `word` (the smallest of its lemmas, for determinism)."""
    return min(lemmas(word))


def content_lemmas(tokens: list[Token]) -> Iterator[str]:
    """Lemmas of the tokens that carry content (no stopwords, no one-letter words)."""
    for t in tokens:
        if t.text not in STOPWORDS and (len(t.text) > 1 or t.text.isdigit()):
            yield lemma(t.text)
