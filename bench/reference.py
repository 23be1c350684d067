"""Benchmark recordings with their reference transcripts, and WER against them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

from bench.latency import Utterance

FIXTURES = Path(__file__).parent / "fixtures"

_WHISPER_NORMALIZER = EnglishTextNormalizer()


@dataclass(frozen=True, slots=True)
class Reference:
    """A fixture recording (`x.flac`) and what was said in it (`x.json`)."""

    name: str
    path: Path
    channels: int
    duration_s: float
    text: str
    utterances: list[Utterance]

    @property
    def stereo(self) -> bool:
        return self.channels > 1

    def channel_text(self, channel: int) -> str:
        """The reference words of one channel, in time order."""
        utts = sorted((u for u in self.utterances if u.channel == channel), key=lambda u: u.start_s)
        return " ".join(u.text for u in utts)

    def texts(self) -> list[str]:
        """What WER compares against: one string per channel for stereo, else the text."""
        return (
            [self.channel_text(ch) for ch in range(self.channels)] if self.stereo else [self.text]
        )


def load_reference(path: str | Path) -> Reference:
    """Read `path` (audio) and its sibling `.json` reference."""
    path = Path(path)
    if not path.exists() and not path.suffix:
        path = FIXTURES / f"{path.name}.flac"
    meta = json.loads(path.with_suffix(".json").read_text())
    utterances = [
        Utterance(
            start_s=float(u["start_s"]),
            end_s=float(u["end_s"]),
            text=str(u["text"]),
            channel=None if u.get("channel") is None else int(u["channel"]),
        )
        for u in meta["utterances"]
    ]
    return Reference(
        name=path.stem,
        path=path,
        channels=int(meta["channels"]),
        duration_s=float(meta["duration_s"]),
        text=str(meta["text"]),
        utterances=sorted(utterances, key=lambda u: (u.start_s, u.channel or 0)),
    )


def default_files() -> list[Path]:
    return sorted(FIXTURES.glob("*.flac"))


def normalize_text(text: str) -> str:
    """Whisper's English normalizer, the one Whisper WER is usually scored with.

    Besides case and punctuation it writes spelled numbers as digits ("seven thirty" ->
    "730"), expands contractions ("I'm" -> "i am") and drops fillers, so a reference
    that spells "nineteen eighty two" and a model that writes "1982" agree. Streaming
    and offline hypotheses go through the same function.
    """
    return " ".join(_WHISPER_NORMALIZER(text).split())


@dataclass(frozen=True, slots=True)
class WordErrors:
    """Corpus word error rate of one or more (reference, hypothesis) pairs."""

    wer: float
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        """Word errors of every kind: substitutions, deletions and insertions."""
        return self.substitutions + self.deletions + self.insertions

    def as_dict(self) -> dict[str, float | int]:
        return {
            "wer": round(self.wer, 4),
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "reference_words": self.reference_words,
        }


def word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> WordErrors:
    """WER over all pairs together (errors summed, divided by all reference words)."""
    if len(references) != len(hypotheses):
        raise ValueError("one hypothesis per reference")
    refs = [normalize_text(r) for r in references]
    hyps = [normalize_text(h) for h in hypotheses]
    n_ref = sum(len(r.split()) for r in refs)
    if n_ref == 0:
        raise ValueError("the references have no words")
    subs = dels = ins = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        if not ref:
            ins += len(hyp.split())
            continue
        if not hyp:
            dels += len(ref.split())
            continue
        out = jiwer.process_words(ref, hyp)
        subs, dels, ins = subs + out.substitutions, dels + out.deletions, ins + out.insertions
    return WordErrors((subs + dels + ins) / n_ref, subs, dels, ins, n_ref)


def errors_per_utterance(utterances: Sequence[str], hypothesis: str) -> list[int]:
    """Word errors of one track's hypothesis, charged to the reference utterance they hit.

    The hypothesis is aligned to the utterances' words as one text; a substituted or
    deleted word counts against its utterance, an inserted one against the utterance of
    the reference word before it. The sum equals the track's word errors.
    """
    words: list[str] = []
    owner: list[int] = []
    for index, text in enumerate(utterances):
        for word in normalize_text(text).split():
            words.append(word)
            owner.append(index)
    errors = [0] * len(utterances)
    hyp = normalize_text(hypothesis)
    if not hyp:
        for index in owner:
            errors[index] += 1
        return errors
    if not words:
        if errors:
            errors[0] += len(hyp.split())
        return errors
    for chunk in jiwer.process_words(" ".join(words), hyp).alignments[0]:
        if chunk.type == "equal":
            continue
        if chunk.type == "insert":
            errors[owner[max(chunk.ref_start_idx - 1, 0)]] += (
                chunk.hyp_end_idx - chunk.hyp_start_idx
            )
        else:
            for k in range(chunk.ref_start_idx, chunk.ref_end_idx):
                errors[owner[k]] += 1
    return errors
