"""Emotion models built and saved by the test, loaded and run through the real loading code path."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

from services.enrich.emotion import EmotionModel, EmotionModelError, Wav2Vec2MeanPoolRegression

CATEGORIES = ["angry", "happy", "neutral", "sad"]


def tiny_config(labels: list[str], norm: str = "layer", **extra: Any) -> Wav2Vec2Config:
    """A 1-layer, 32-wide wav2vec2: the real architecture at a size a unit test can run."""
    return Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        feat_extract_norm=norm, classifier_proj_size=8, final_dropout=0.1,
        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}, **extra,
    )  # fmt: skip


def save_classifier(path: Path, norm: str = "layer", preprocessor: bool = True) -> Path:
    torch.manual_seed(0)
    model = Wav2Vec2ForSequenceClassification(tiny_config(CATEGORIES, norm))
    with torch.no_grad():  # spread the logits so the classes are distinguishable
        model.classifier.weight.mul_(50.0)
    model.save_pretrained(path)
    if preprocessor:
        Wav2Vec2FeatureExtractor(
            sampling_rate=16000, do_normalize=True, return_attention_mask=True
        ).save_pretrained(path)
    return path


def save_regressor(
    path: Path,
    labels: list[str],
    bias: tuple[float, ...] = (0.2, 0.5, 0.8),
    architecture: str | None = None,
) -> Path:
    torch.manual_seed(1)
    model = Wav2Vec2MeanPoolRegression(tiny_config(labels))
    with torch.no_grad():
        model.classifier.out_proj.bias.copy_(torch.tensor(bias))
        model.classifier.out_proj.weight.mul_(0.5)  # outputs vary with the audio, stay in 0-1
    model.save_pretrained(path)
    if architecture is not None:  # what audeering's config.json says
        config = json.loads((path / "config.json").read_text())
        config["architectures"] = [architecture]
        (path / "config.json").write_text(json.dumps(config))
    return path


def audios(lengths: tuple[int, ...] = (16000, 7000, 24000, 300, 12345)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(max(lengths)) / 16000
    base = 0.2 * np.sin(2 * np.pi * 140 * t) + 0.05 * rng.standard_normal(t.size)
    return [(base[:n] * (1 + i)).astype(np.float32) for i, n in enumerate(lengths)]


def test_classification_head_gives_categorical_scores(tmp_path: Path) -> None:
    model = EmotionModel(str(save_classifier(tmp_path / "cat")))
    results = model.predict(audios())
    assert len(results) == 5
    assert model.provenance() == {
        "model": "cat",
        "head": "classification",
        "device": "cpu",
        "dtype": "float32",
    }
    for r in results:
        assert r["arousal"] is None and r["valence"] is None and r["dominance"] is None
        cat = r["categorical"]
        assert list(cat["scores"]) == CATEGORIES
        assert sum(cat["scores"].values()) == pytest.approx(1.0, abs=1e-3)
        assert cat["primary"] == max(cat["scores"], key=cat["scores"].get)
        assert cat["confidence"] == cat["scores"][cat["primary"]]
    # The scores depend on the audio (not a constant head output).
    assert len({tuple(r["categorical"]["scores"].values()) for r in results}) == len(results)


@pytest.mark.parametrize("architecture", [None, "Wav2Vec2ForSpeechClassification", "EmotionModel"])
def test_regression_head_follows_id2label_order(tmp_path: Path, architecture: str | None) -> None:
    model = EmotionModel(
        str(
            save_regressor(
                tmp_path / "dim", ["arousal", "dominance", "valence"], architecture=architecture
            )
        )
    )
    results = model.predict(audios())
    assert model.head == "regression"
    for r in results:
        assert r["categorical"] is None
        for name in ("arousal", "dominance", "valence"):
            assert 0.0 <= r[name]["score"] <= 1.0
            assert r[name]["level"] in ("very_low", "low", "neutral", "high", "very_high")
    # The bias dominates: output 0 ~ 0.2, 1 ~ 0.5, 2 ~ 0.8, named by id2label.
    means = {
        n: np.mean([r[n]["score"] for r in results]) for n in ("arousal", "dominance", "valence")
    }
    assert means["arousal"] < means["dominance"] < means["valence"]

    # The same weights under another id2label order name the outputs differently.
    permuted = EmotionModel(
        str(save_regressor(tmp_path / "perm", ["valence", "arousal", "dominance"]))
    )
    again = permuted.predict(audios())
    assert [r["valence"]["score"] for r in again] == [r["arousal"]["score"] for r in results]
    assert [r["dominance"]["score"] for r in again] == [r["valence"]["score"] for r in results]


def test_regression_without_named_outputs_assumes_arousal_dominance_valence(tmp_path: Path) -> None:
    path = save_regressor(
        tmp_path / "generic", ["LABEL_0", "LABEL_1", "LABEL_2"], architecture="EmotionModel"
    )
    r = EmotionModel(str(path)).predict(audios((16000,)))[0]
    assert r["arousal"]["score"] < r["dominance"]["score"] < r["valence"]["score"]


@pytest.mark.parametrize("kind", ["classifier", "regressor", "classifier_group_norm"])
def test_batched_equals_one_by_one_and_is_deterministic(tmp_path: Path, kind: str) -> None:
    if kind == "regressor":
        path = save_regressor(tmp_path / kind, ["arousal", "dominance", "valence"])
    else:
        path = save_classifier(tmp_path / kind, norm="group" if "group" in kind else "layer")
    batched = EmotionModel(str(path), batch_size=3).predict(audios())
    single = EmotionModel(str(path), batch_size=1)
    one_by_one = [single.predict([a])[0] for a in audios()]
    assert EmotionModel(str(path), batch_size=3).predict(audios()) == batched

    def scores(r: dict[str, Any]) -> list[float]:
        if r["categorical"]:
            return list(r["categorical"]["scores"].values())
        return [r[n]["score"] for n in ("arousal", "dominance", "valence")]

    for b, o in zip(batched, one_by_one, strict=True):
        assert scores(b) == pytest.approx(scores(o), abs=2e-3)


def test_missing_preprocessor_config_uses_normalizing_default(tmp_path: Path) -> None:
    with_pre = EmotionModel(str(save_classifier(tmp_path / "a"))).predict(audios())
    without = EmotionModel(str(save_classifier(tmp_path / "b", preprocessor=False))).predict(
        audios()
    )
    assert with_pre == without


def _drop_keys(path: Path, prefix: str) -> None:
    weights = load_file(path / "model.safetensors")
    kept = {k: v for k, v in weights.items() if not k.startswith(prefix)}
    assert len(kept) < len(weights)
    save_file(kept, path / "model.safetensors", metadata={"format": "pt"})


def test_checkpoint_missing_classifier_weights_is_refused(tmp_path: Path) -> None:
    path = save_classifier(tmp_path / "nohead")
    _drop_keys(path, "classifier.")
    model = EmotionModel(str(path))
    with pytest.raises(
        EmotionModelError, match=r"missing \['classifier.bias', 'classifier.weight'\]"
    ):
        model.predict(audios())
    # The refusal is remembered: no reload per segment, same error every time.
    with pytest.raises(EmotionModelError, match="missing"):
        model.warm()


def test_checkpoint_missing_out_proj_is_refused(tmp_path: Path) -> None:
    path = save_regressor(tmp_path / "noproj", ["arousal", "dominance", "valence"])
    _drop_keys(path, "classifier.out_proj.")
    with pytest.raises(EmotionModelError, match=r"missing \['classifier\.out_proj\.bias'"):
        EmotionModel(str(path)).load()


def test_regression_weights_under_a_classification_config_are_refused(tmp_path: Path) -> None:
    path = save_regressor(
        tmp_path / "mixed",
        ["arousal", "dominance", "valence"],
        architecture="Wav2Vec2ForSequenceClassification",
    )
    with pytest.raises(EmotionModelError, match=r"unexpected \['classifier.dense.bias'"):
        EmotionModel(str(path)).load()


def test_head_with_wrong_number_of_outputs_is_refused(tmp_path: Path) -> None:
    path = save_classifier(tmp_path / "resized")
    config = json.loads((path / "config.json").read_text())
    config["id2label"] = {"0": "angry", "1": "happy"}
    config["label2id"] = {"angry": 0, "happy": 1}
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(EmotionModelError):
        EmotionModel(str(path)).load()


def test_unnamed_classes_and_missing_directory_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    Wav2Vec2ForSequenceClassification(tiny_config(["LABEL_0", "LABEL_1"])).save_pretrained(
        tmp_path / "unnamed"
    )
    with pytest.raises(EmotionModelError, match="names no emotions"):
        EmotionModel(str(tmp_path / "unnamed")).load()
    with pytest.raises(EmotionModelError, match="does not exist"):
        EmotionModel(str(tmp_path / "nowhere")).load()


def test_warm_loads_and_runs_once(tmp_path: Path) -> None:
    model = EmotionModel(str(save_classifier(tmp_path / "w")))
    model.warm()
    assert model.device == "cpu"
    assert model.predict([]) == []


def test_concurrent_first_use_loads_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = EmotionModel(str(save_classifier(tmp_path / "shared")))
    loads: list[int] = []
    real = EmotionModel._load_checked

    def counting(self: EmotionModel) -> Any:
        loads.append(1)
        return real(self)

    monkeypatch.setattr(EmotionModel, "_load_checked", counting)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda a: model.predict([a])[0], audios()))
    assert loads == [1]
    assert results == [model.predict([a])[0] for a in audios()]
