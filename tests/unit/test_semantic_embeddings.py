"""Embedding keywords with the real bundled all-MiniLM-L6-v2: relevance, MMR, determinism."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from services.semantic.annotate import candidate_phrases, split_sentences
from services.semantic.core import SemanticCore
from services.semantic.embeddings import (
    BUNDLED_MODEL_NAME,
    EmbeddingKeywords,
    EmbeddingModel,
    EmbeddingModelError,
    bundled_model_dir,
    mmr,
)
from services.semantic.settings import SemanticSettings
from services.semantic.turns import SegmentPart
from services.semantic.worker import SemanticHandler
from shared.schemas import SemanticUpdate
from shared.settings import Settings
from tests.unit.test_semantic_core import CALL, run, wire

BILLING = (
    "I was charged twice on my last invoice, the billing department double billed my "
    "credit card and I still have not received a refund for the duplicate payment."
)
BILLING_WORDS = {"charged", "invoice", "billing", "billed", "refund", "payment", "credit"}
ON = SemanticSettings(embeddings=True)


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    # Nothing may come from the network: the bundled directory is all there is.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def model(_offline: None) -> EmbeddingModel:
    loaded = EmbeddingModel()
    loaded.load()
    return loaded


@pytest.fixture(scope="module")
def ranker(model: EmbeddingModel) -> EmbeddingKeywords:
    return EmbeddingKeywords(model)


def candidates(text: str) -> list[str]:
    return candidate_phrases(split_sentences([SegmentPart("s", "spk_0", 0.0, 1.0, text)]))


def test_the_bundled_model_is_found_without_a_setting(model: EmbeddingModel) -> None:
    assert model.path == bundled_model_dir()
    assert (model.path / "model.safetensors").is_file()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert EmbeddingKeywords(model).annotator == f"embedding:{BUNDLED_MODEL_NAME}"


def test_billing_keywords_are_billing_phrases_of_the_turn(ranker: EmbeddingKeywords) -> None:
    found = ranker.keywords(BILLING, 5)
    assert len(found) == 5
    assert set(found) <= set(candidates(BILLING))
    # The best keyword, and most of them, are about the billing problem, not "still".
    assert set(found[0].split()) & BILLING_WORDS
    assert sum(1 for k in found if set(k.split()) & BILLING_WORDS) >= 4
    assert "still" not in found


def test_keywords_follow_the_turn_not_a_fixed_order(ranker: EmbeddingKeywords) -> None:
    network = "My internet connection keeps dropping every evening and the router restarts."
    found = ranker.keywords(network, 3)
    assert set(found) <= set(candidates(network))
    assert any(w in k for k in found for w in ("internet", "router", "connection"))
    assert not set(found) & set(ranker.keywords(BILLING, 3))


def test_the_same_turn_gives_the_same_keywords_on_a_fresh_loader(
    ranker: EmbeddingKeywords,
) -> None:
    first = ranker.keywords(BILLING, 5)
    assert ranker.keywords(BILLING, 5) == first
    fresh = EmbeddingKeywords(EmbeddingModel())
    assert fresh.keywords(BILLING, 5) == first


def test_mmr_keeps_near_duplicates_out(model: EmbeddingModel, ranker: EmbeddingKeywords) -> None:
    phrases = candidates(BILLING)
    vectors = model.encode(phrases)
    relevance = vectors @ model.encode([BILLING])[0]
    similarity = vectors @ vectors.T

    def closest_pair(indices: list[int]) -> float:
        pairs = similarity[np.ix_(indices, indices)] - 2 * np.eye(len(indices))
        return float(pairs.max())

    # By relevance alone the top five repeat themselves ("double billed" twice over).
    assert closest_pair(mmr(relevance, similarity, 5, diversity=0.0)) > 0.85
    found = ranker.keywords(BILLING, 5)
    assert closest_pair([phrases.index(k) for k in found]) < 0.75
    for i, a in enumerate(found):
        for b in found[i + 1 :]:
            assert not set(a.split()) & set(b.split()), (a, b)


def test_a_short_turn_gives_fewer_keywords_and_an_empty_one_none(
    ranker: EmbeddingKeywords,
) -> None:
    assert ranker.keywords("Which account was it sent to", 5) == ["account", "sent"]
    assert ranker.keywords("Okay, yes, thank you.", 5) == []


def test_final_turns_carry_embedding_keywords_and_partial_ones_lexical(
    ranker: EmbeddingKeywords,
) -> None:
    updates = [
        o.event.payload
        for o in run(CALL, SemanticCore(ON, "sid-1", ranker=ranker))
        if isinstance(o.event, SemanticUpdate)
    ]
    finals = [u for u in updates if not u.turn.partial]
    assert len(finals) == 8
    assert {u.annotator for u in finals} == {"embedding:all-MiniLM-L6-v2"}
    assert {u.annotator for u in updates if u.turn.partial} == {"lexical"}
    office = next(u for u in finals if u.turn.id == "turn:seg-1-246400")
    assert office.keywords == ranker.keywords(office.turn.text, 5)
    # The ranker is ignored unless the setting turns embeddings on.
    lexical = run(CALL, SemanticCore(SemanticSettings(), "sid-1", ranker=ranker))
    assert all(
        o.event.payload.annotator == "lexical"
        for o in lexical
        if isinstance(o.event, SemanticUpdate)
    )


@pytest.fixture(scope="module")
def uninterrupted(ranker: EmbeddingKeywords) -> list[bytes]:
    return wire(run(CALL, SemanticCore(ON, "sid-1", ranker=ranker)))


@pytest.mark.parametrize("split", range(len(CALL) + 1))
def test_a_core_with_embeddings_rebuilt_from_state_continues_exactly(
    split: int, ranker: EmbeddingKeywords, uninterrupted: list[bytes]
) -> None:
    first = SemanticCore(ON, "sid-1", ranker=ranker)
    before = run(CALL[:split], first)
    state = json.loads(json.dumps(first.state()))
    # The checkpoint holds no embeddings: it is the lexical core's, byte for byte.
    lexical = SemanticCore(SemanticSettings(), "sid-1")
    run(CALL[:split], lexical)
    assert state == lexical.state()
    resumed = SemanticCore(ON, "sid-1", state=state, ranker=ranker)
    assert wire(before + run(CALL[split:], resumed)) == uninterrupted


def test_an_invalid_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelError, match="does not exist"):
        EmbeddingModel(str(tmp_path / "absent"))
    with pytest.raises(EmbeddingModelError, match="not a sentence-transformers model"):
        EmbeddingModel(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": ')
    broken = EmbeddingModel(str(tmp_path))
    with pytest.raises(EmbeddingModelError, match=f"cannot load embedding model {tmp_path}"):
        broken.load()
    # Remembered, not retried per turn.
    with pytest.raises(EmbeddingModelError, match="cannot load"):
        broken.encode(["a turn"])


async def test_the_worker_refuses_to_start_on_a_broken_model(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text("[]")
    settings = SemanticSettings(embeddings=True, embedding_model=str(tmp_path))
    handler = SemanticHandler(Settings(stages={"semantic": settings}))
    with pytest.raises(EmbeddingModelError, match=str(tmp_path)):
        await handler.prepare()
    assert handler.ranker is None
