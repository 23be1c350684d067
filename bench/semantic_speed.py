"""Semantic processing time per final turn (p50/p95) over a long synthetic two-speaker call.

Lexical keywords, then keywords through the bundled embedding model (extra
`semantic-embeddings`) on the first `--embedding-turns` turns: the issue's target is
20 ms per final turn with embeddings, 5 ms without.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from bench.machine import cpu_model, machine_info
from services.semantic.annotate import KeywordRanker
from services.semantic.core import SemanticCore
from services.semantic.embeddings import EmbeddingKeywords, EmbeddingModel
from services.semantic.settings import SemanticSettings
from shared.schemas import Segment

_SENTENCES = (
    "Hello, support desk, how can I help?",
    "Hi, I am calling about an invoice from last month.",
    "Which account was it sent to",
    "It went to our main office on Baker Street.",
    "I see a duplicate charge on that invoice, and the price went up again.",
    "Please remove it and send me a new copy.",
    "Sure, I'll send you the corrected invoice by Friday.",
    "This is unacceptable, I want to speak to a manager.",
    "Actually, it went to our billing office.",
    "Could you read me the account number on your latest bill?",
    "Let me check the payment history for your account.",
    "If this happens again we will cancel the contract.",
)


def conversation(turns: int, seed: int = 7) -> list[Segment]:
    """Finals of a call alternating speakers, 1-3 segments per turn, some overlaps."""
    rng = random.Random(seed)
    segments: list[Segment] = []
    t = 0.0
    for i in range(turns):
        speaker = f"spk_{i % 2}"
        for _ in range(rng.randint(1, 3)):
            text = rng.choice(_SENTENCES)
            duration = 0.06 * len(text)
            segments.append(
                Segment(
                    id=f"seg-{i % 2}-{round(t * 16000)}",
                    start=round(t, 3),
                    end=round(t + duration, 3),
                    text=text,
                    speaker_id=speaker,
                    channel=i % 2,
                    partial=False,
                )
            )
            t += duration + rng.uniform(0.2, 1.2)
        # Most hand-overs leave a gap; one in ten overlaps the previous turn's end.
        t += -1.0 if rng.random() < 0.1 else rng.uniform(0.3, 1.5)
    return segments


def measure(
    settings: SemanticSettings, segments: list[Segment], ranker: KeywordRanker | None = None
) -> tuple[list[float], int]:
    """Seconds of every `on_final` call, and how many turns went final in all."""
    core = SemanticCore(settings, "bench", ranker=ranker)
    per_call: list[float] = []
    finals = 0
    for segment in segments:
        began = time.perf_counter()
        outputs = core.on_final(segment)
        per_call.append(time.perf_counter() - began)
        finals += sum(1 for o in outputs if o.final and o.event.id.startswith("turn:"))
    began = time.perf_counter()
    finals += sum(1 for o in core.finish() if o.final and o.event.id.startswith("turn:"))
    per_call.append(time.perf_counter() - began)
    return per_call, finals


def _ms(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--embedding-turns", type=int, default=300, help="0: skip embeddings")
    args = parser.parse_args()
    segments = conversation(args.turns)
    info = machine_info()
    print(f"machine: {cpu_model()}, {info['cpus']} CPUs, {info['ram_gib']} GiB, "
          f"Python {info['versions']['python']}")  # fmt: skip
    print(f"conversation: {args.turns} turns, {len(segments)} final segments, "
          f"{segments[-1].end / 60:.1f} min of audio")  # fmt: skip
    # A final turn costs the calls that built it: per call p50/p95, and the mean per turn.
    print(f"{'mode':<29}{'turns':>7}{'call p50 ms':>13}{'call p95 ms':>13}{'ms / final turn':>17}")
    modes: list[tuple[str, SemanticSettings, KeywordRanker | None, list[Segment]]] = [
        ("lexical, interim updates", SemanticSettings(), None, segments),
        ("lexical, finals only", SemanticSettings(interim_updates=False), None, segments),
    ]
    if args.embedding_turns > 0:
        model = EmbeddingModel()  # the bundled all-MiniLM-L6-v2, as the worker loads it
        model.warm()
        ranker = EmbeddingKeywords(model)
        few = conversation(args.embedding_turns)
        on = SemanticSettings(embeddings=True)
        modes.append(("embeddings, interim updates", on, ranker, few))
        finals_only = SemanticSettings(embeddings=True, interim_updates=False)
        modes.append(("embeddings, finals only", finals_only, ranker, few))
    for label, settings, keyword_ranker, turns in modes:
        # Warm caches (lemmas, the model's kernels) as a running worker has.
        measure(settings, segments[: 50 if keyword_ranker else 200], keyword_ranker)
        per_call, finals = measure(settings, turns, keyword_ranker)
        print(
            f"{label:<29}{finals:>7}{_ms(per_call, 50):>13.3f}{_ms(per_call, 95):>13.3f}"
            f"{sum(per_call) / finals * 1000:>17.3f}"
        )


if __name__ == "__main__":
    main()
