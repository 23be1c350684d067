"""Annotate one turn: keywords, risk tags, actions and commitments, questions, corrections."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.semantic.lexicon import DETERMINERS, STOPWORDS, Token, lemmas, tokenize
from services.semantic.turns import SegmentPart, TurnRevision
from shared.schemas import Action, SemanticAnnotation, Turn

ANNOTATOR = "lexical"

# ASR punctuation is unreliable, but a sentence is still best cut at it: cutting at
# segment boundaries too would split "Could you read me | the account number?" into two
# questions.
_SENTENCE = re.compile(r"[^.?!]+[.?!]*")


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that open a sentence without deciding its form ("Okay, can you ...").
_DISCOURSE = _wordset(
    "so and but okay ok well um uh oh alright right hi hello hey sorry yes yeah no then "
    "also now great sure thanks perfect fine"
)
_WH = _wordset("what when where which who whom whose why how")
_WH_CONTRACTED = _wordset("what's how's where's who's when's why's")
_AUX = _wordset(
    "can could would will do does did is are was were have has had should shall may might "
    "am must won't can't don't doesn't didn't isn't aren't wasn't weren't haven't hasn't "
    "wouldn't couldn't shouldn't"
)
# What follows an auxiliary when it opens a question ("can you", "is the", "did anyone").
_SUBJECTS = _wordset(
    "you i we he she it they there this that these those your my our his her their the a an "
    "anyone anybody someone somebody everyone everything anything"
)
# A wh-word followed by a subject opens a clause, not a question ("When I called, ...").
_CLAUSE_SUBJECTS = _wordset("i we you he she they it a an")

# First-person future: the speaker takes something on.
_COMMITMENTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("i", "am", "going", "to"), "going_to"),
    (("i'm", "going", "to"), "going_to"),
    (("i'm", "gonna"), "going_to"),
    (("we", "are", "going", "to"), "going_to"),
    (("we're", "going", "to"), "going_to"),
    (("we're", "gonna"), "going_to"),
    (("i", "will"), "i_will"),
    (("i", "shall"), "i_will"),
    (("i'll",), "i_will"),
    (("we", "will"), "we_will"),
    (("we", "shall"), "we_will"),
    (("we'll",), "we_will"),
    (("let", "me"), "let_me"),
    (("let's",), "let_us"),
)
# Verbs whose bare form opening a sentence asks for a task ("Schedule a follow-up").
_TASK_VERBS = _wordset(
    "send email call schedule book review check update remove forward share prepare "
    "confirm arrange set follow make fix refund reset resend submit sign"
)
_FIRST_PERSON = frozenset({"i", "we"})
# Task verbs that, bare after "I"/"we", promise rather than describe: "make", "set" and
# "follow" ("we make it easy", "we follow the rules") say how things are.
_PRESENT_PROMISE_VERBS = _TASK_VERBS - _wordset("make set follow")
# What joins one commitment to the next in a sentence ("…, and I'll …").
_JOINER_TAIL = re.compile(r"(?:[\s,;]+(?:and|so|then|but|also))*[\s.!?,;]*$", re.IGNORECASE)
# "let me know" asks the other side; "I will not" refuses.
_NOT_AFTER: Mapping[str, frozenset[str]] = {
    "let_me": _wordset("know guess be see think ask"),
    "i_will": frozenset({"not", "never"}),
    "we_will": frozenset({"not", "never"}),
    "going_to": frozenset({"not", "never"}),
}

# Corrections: strong markers need one shared content word with the earlier turn; weak
# ones ("actually", "sorry") open plenty of sentences that correct nothing, so they need
# more than half of the sentence's content words to repeat the earlier turn.
_STRONG_MARKERS: tuple[tuple[str, ...], ...] = (
    ("i", "mean"),
    ("i", "meant"),
    ("correction",),
    ("i", "misspoke"),
    ("scratch", "that"),
    ("let", "me", "correct"),
    ("make", "that"),
    ("no", "it's"),
    ("no", "it", "is"),
    ("no", "it", "was"),
    ("no", "that's"),
)
_WEAK_MARKERS: tuple[tuple[str, ...], ...] = (("actually",), ("sorry",), ("wait",), ("oops",))
_MARKER_WORDS = frozenset({"correction", "misspoke", "scratch", "correct", "make", "wait", "oops"})
# Markers count when they start within the first few words ("No, sorry, it's ...").
_MARKER_REACH = 3
_MAX_PHRASE_WORDS = 3


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    tokens: tuple[Token, ...]
    segment_ids: tuple[str, ...]
    # (start, end, segment id) of each segment's text within `text`.
    spans: tuple[tuple[int, int, str], ...] = ()

    def segments_of(self, start: int, end: int) -> list[str]:
        """Ids of the segments that `text[start:end]` came from."""
        ids = [sid for a, b, sid in self.spans if a < end and start < b]
        return ids or list(self.segment_ids)


def split_sentences(parts: Sequence[SegmentPart]) -> list[Sentence]:
    """Sentences of a turn's text, each with the ids of the segments it came from."""
    text, spans = "", []
    for part in parts:
        if not part.text:
            continue
        if text:
            text += " "
        spans.append((len(text), len(text) + len(part.text), part.id))
        text += part.text
    sentences = []
    for m in _SENTENCE.finditer(text):
        raw = m.group()
        lead = len(raw) - len(raw.lstrip())
        start, end = m.start() + lead, m.start() + len(raw.rstrip())
        if start >= end:
            continue
        ids = tuple(sid for a, b, sid in spans if a < end and start < b)
        local = tuple(
            (max(a, start) - start, min(b, end) - start, sid)
            for a, b, sid in spans
            if a < end and start < b
        )
        sentences.append(Sentence(text[start:end], tuple(tokenize(text[start:end])), ids, local))
    return sentences


def _opening(tokens: Sequence[Token]) -> list[str]:
    """The sentence's words after its leading discourse markers."""
    words = [t.text for t in tokens]
    i = 0
    while i < len(words) - 1 and words[i] in _DISCOURSE:
        i += 1
    return words[i:]


def is_question(sentence: Sentence) -> bool:
    """A question mark, or an interrogative opening (wh-word, auxiliary + subject)."""
    if sentence.text.endswith("?"):
        return True
    words = _opening(sentence.tokens)
    if not words:
        return False
    first, second = words[0], words[1] if len(words) > 1 else ""
    if first in _WH_CONTRACTED:
        return True
    if first in _WH:
        return second not in _CLAUSE_SUBJECTS
    if first in _AUX:
        return second in _SUBJECTS and (first, second) != ("do", "it")
    return False


def _interrogative(sentence: Sentence) -> bool:
    # A question mark alone does not make "I'll send it over, okay?" a question here.
    stripped = Sentence(sentence.text.rstrip("?"), sentence.tokens, sentence.segment_ids)
    return is_question(stripped)


def _starts_at(words: Sequence[str], i: int, pattern: Sequence[str]) -> bool:
    return tuple(words[i : i + len(pattern)]) == tuple(pattern)


def _commitment_at(words: Sequence[str], i: int) -> tuple[int, str] | None:
    """(length, pattern) of a commitment that starts at word `i`, if one does."""
    for phrase, name in _COMMITMENTS:
        if _starts_at(words, i, phrase):
            after = words[i + len(phrase)] if i + len(phrase) < len(words) else ""
            if after in _NOT_AFTER.get(name, frozenset()):
                return None
            return len(phrase), name
    # "We refund the charge": tiny.en often drops the "'ll" of "we'll"/"I'll", leaving
    # a first-person subject and a bare task verb. Only at the head of a clause, so "if
    # we refund" or "when I call" stay conditions; a habitual "we refund within five
    # days" counts too, which in a support call is a promise to the caller as well.
    if (
        words[i] in _FIRST_PERSON
        and i + 1 < len(words)
        and words[i + 1] in _PRESENT_PROMISE_VERBS
        and (i == 0 or words[i - 1] in _DISCOURSE)
    ):
        return 1, "first_person"
    return None


def find_actions(sentence: Sentence, speaker_id: str, turn_id: str) -> list[Action]:
    """Commitments ("I'll send …", each of "we'll refund it and I'll send …"), or else one
    request ("Please send …", "Schedule …").

    Never from a question: "Will you send it?" asks, it neither commits nor instructs.
    """
    if _interrogative(sentence):
        return []
    words = [t.text for t in sentence.tokens]
    found: list[tuple[int, str]] = []  # (first word, pattern)
    i = 0
    while i < len(words):
        hit = _commitment_at(words, i)
        if hit is None:
            i += 1
            continue
        found.append((i, hit[1]))
        i += hit[0]
    actions = []
    for n, (first, name) in enumerate(found):
        start = sentence.tokens[first].start
        # Each commitment runs up to the next one, less the "and" that joins them.
        end = sentence.tokens[found[n + 1][0]].start if n + 1 < len(found) else len(sentence.text)
        text = _JOINER_TAIL.sub("", sentence.text[start:end])
        actions.append(
            Action(
                text=text,
                pattern=name,
                speaker_id=speaker_id,
                commitment=True,
                turn_id=turn_id,
                segment_ids=sentence.segments_of(start, start + len(text)),
            )
        )
    if actions:
        return actions
    opening = _opening(sentence.tokens)
    if sentence.text.endswith("?") or len(opening) < 2:
        return []
    if opening[0] == "please" or words[-1] == "please":
        kind = "request"
    elif opening[0] in _TASK_VERBS:
        kind = "imperative"
    else:
        return []
    return [
        Action(
            text=sentence.text.rstrip(".!?, "),
            pattern=kind,
            speaker_id=speaker_id,
            turn_id=turn_id,
            segment_ids=list(sentence.segment_ids),
        )
    ]


class RiskMatcher:
    """Configured risk terms matched on word boundaries and lemmas, phrases word by word."""

    def __init__(self, terms: Mapping[str, Sequence[str]]) -> None:
        # None stands for a determiner: "speak to a manager" ~ "speak to your manager".
        self._terms: list[tuple[str, str, tuple[frozenset[str] | None, ...]]] = []
        for tag, tag_terms in terms.items():
            for term in tag_terms:
                words = [t.text for t in tokenize(term)]
                if words:
                    pattern = tuple(None if w in DETERMINERS else lemmas(w) for w in words)
                    self._terms.append((tag, term, pattern))
        self._tags = list(terms)

    def match(self, tokens: Sequence[Token]) -> dict[str, list[str]]:
        """Risk tag -> the terms that fired, tags and terms in configured order."""
        forms = [lemmas(t.text) for t in tokens]
        texts = [t.text for t in tokens]
        fired: dict[str, list[str]] = {}
        for tag, term, pattern in self._terms:
            if any(self._matches_at(pattern, forms, texts, i) for i in range(len(forms))):
                fired.setdefault(tag, []).append(term)
        return {tag: fired[tag] for tag in self._tags if tag in fired}

    @staticmethod
    def _matches_at(
        pattern: tuple[frozenset[str] | None, ...],
        forms: Sequence[frozenset[str]],
        texts: Sequence[str],
        i: int,
    ) -> bool:
        if i + len(pattern) > len(forms):
            return False
        for j, want in enumerate(pattern):
            if want is None:
                if texts[i + j] not in DETERMINERS:
                    return False
            elif want.isdisjoint(forms[i + j]):
                return False
        return True


def content_runs(sentences: Sequence[Sentence]) -> list[list[str]]:
    """Maximal runs of content words; stopwords, short words, numbers and commas end one."""
    runs: list[list[str]] = []
    for sentence in sentences:
        for chunk in sentence.text.split(","):
            run: list[str] = []
            for word in (t.text for t in tokenize(chunk)):
                if word in STOPWORDS or len(word) < 3 or word.isdigit():
                    if run:
                        runs.append(run)
                    run = []
                    continue
                run.append(word)
            if run:
                runs.append(run)
    return runs


def candidate_phrases(sentences: Sequence[Sentence]) -> list[str]:
    """Every 1-3-gram inside a content run, deduplicated in order of first appearance."""
    found: dict[str, None] = {}
    for run in content_runs(sentences):
        for start in range(len(run)):
            for n in range(1, _MAX_PHRASE_WORDS + 1):
                if start + n <= len(run):
                    found.setdefault(" ".join(run[start : start + n]))
    return list(found)


def keywords(sentences: Sequence[Sentence], limit: int) -> list[str]:
    """RAKE-style key phrases: runs of content words scored by their words' degrees.

    Degree (not RAKE's degree / frequency) so that a repeated word lifts its phrase: in a
    single turn the repeated topic matters more than the longest run of content words.
    """
    phrases = [
        run[i : i + _MAX_PHRASE_WORDS]
        for run in content_runs(sentences)
        for i in range(0, len(run), _MAX_PHRASE_WORDS)
    ]
    freq: Counter[str] = Counter()
    degree: Counter[str] = Counter()
    for phrase in phrases:
        for word in phrase:
            freq[word] += 1
            degree[word] += len(phrase)
    scored: dict[str, tuple[float, int]] = {}
    for index, phrase in enumerate(phrases):
        key = " ".join(phrase)
        if key not in scored:
            scored[key] = (sum(degree[w] for w in phrase), index)
    ranked = sorted(scored, key=lambda k: (-scored[k][0], scored[k][1]))
    return ranked[:limit]


def _content(tokens: Sequence[Token]) -> list[frozenset[str]]:
    return [
        lemmas(t.text)
        for t in tokens
        if t.text not in STOPWORDS
        and t.text not in _MARKER_WORDS
        and (len(t.text) > 1 or t.text.isdigit())
    ]


def _marker(words: Sequence[str]) -> str | None:
    """'strong' or 'weak' when a correction marker opens the sentence, else None."""
    for i in range(min(_MARKER_REACH, len(words))):
        if any(_starts_at(words, i, m) for m in _STRONG_MARKERS):
            return "strong"
    for i in range(min(_MARKER_REACH, len(words))):
        if any(_starts_at(words, i, m) for m in _WEAK_MARKERS):
            return "weak"
    return None


def corrected_turn(sentence: Sentence, earlier: Sequence[Turn]) -> str | None:
    """The id of the earlier turn (same speaker, latest first) this sentence corrects."""
    if is_question(sentence):
        return None
    strength = _marker([t.text for t in sentence.tokens])
    content = _content(sentence.tokens)
    if strength is None or not content:
        return None
    for turn in reversed(earlier):
        before: set[str] = set().union(*_content(tokenize(turn.text)))
        shared = sum(1 for forms in content if not forms.isdisjoint(before))
        if shared and (strength == "strong" or shared / len(content) > 0.5):
            return turn.id
    return None


class KeywordRanker(Protocol):
    """Picks a turn's keywords among its candidate phrases (e.g. by embedding similarity)."""

    # Provenance for `SemanticAnnotation.annotator`, e.g. "embedding:all-MiniLM-L6-v2".
    annotator: str

    def rank(self, text: str, candidates: Sequence[str], limit: int) -> list[str]:
        """Up to `limit` of `candidates`, best first; the same inputs give the same list."""
        ...


class Annotator:
    """Annotates turns with the configured risk terms; holds no session state."""

    def __init__(
        self,
        risk_terms: Mapping[str, Sequence[str]],
        max_keywords: int,
        ranker: KeywordRanker | None = None,
    ) -> None:
        self.risk = RiskMatcher(risk_terms)
        self.max_keywords = max_keywords
        self.ranker = ranker

    def keywords(self, sentences: Sequence[Sentence], *, partial: bool) -> tuple[list[str], str]:
        """The turn's keywords and the annotator that chose them.

        A partial turn keeps the lexical keywords even with a ranker: interim updates are
        there to bring risk tags and questions fast, and a model pass per growing revision
        would multiply the per-turn cost by the turn's segment count.
        """
        if self.ranker is None or partial:
            return keywords(sentences, self.max_keywords), ANNOTATOR
        text = " ".join(s.text for s in sentences)
        ranked = self.ranker.rank(text, candidate_phrases(sentences), self.max_keywords)
        return ranked, self.ranker.annotator

    def annotate(
        self,
        revision: TurnRevision,
        earlier_same_speaker: Sequence[Turn],
        *,
        context_size: int,
        ledger_before: int,
    ) -> SemanticAnnotation:
        """The annotation of one turn revision; `earlier_same_speaker` oldest first."""
        turn = revision.turn
        speaker = turn.speaker_id or ""
        sentences = split_sentences(revision.parts)
        risk_terms = self.risk.match([t for s in sentences for t in s.tokens])
        actions = [a for s in sentences for a in find_actions(s, speaker, turn.id)]
        questions = [s.text for s in sentences if is_question(s)]
        corrections: list[str] = []
        corrected: list[str] = []
        for sentence in sentences:
            target = corrected_turn(sentence, earlier_same_speaker)
            if target is not None:
                corrections.append(sentence.text)
                if target not in corrected:
                    corrected.append(target)
        commitments = [a.text for a in actions if a.commitment]
        key_phrases, annotator = self.keywords(sentences, partial=turn.partial)
        return SemanticAnnotation(
            turn=turn,
            keywords=key_phrases,
            risk_tags=list(risk_terms),
            actions=actions,
            questions=questions,
            question_count=len(questions),
            corrections=corrections,
            commitments=commitments,
            context_size=context_size,
            corrected_turn_ids=corrected,
            commitment_ledger_size=ledger_before + len(commitments),
            risk_terms=risk_terms,
            annotator=annotator,
        )
