"""Speech emotion from a local transformers checkpoint: classification or mean-pooled regression."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForAudioClassification,
    PretrainedConfig,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
)
from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2PreTrainedModel

from services.enrich.levels import dimension_level

SAMPLE_RATE = 16_000
DIMENSIONS = ("arousal", "dominance", "valence")
# audeering's dimensional wav2vec2 models (and the MSP-Podcast convention they follow)
# order their three regression outputs arousal, dominance, valence; used only when the
# config's id2label does not name the outputs itself.
DEFAULT_DIMENSION_ORDER = DIMENSIONS
# Architectures whose checkpoints carry classifier.dense / classifier.out_proj on top of
# `wav2vec2` (audeering's EmotionModel, the "Wav2Vec2ForSpeechClassification" recipe).
REGRESSION_ARCHITECTURES = frozenset(
    {"Wav2Vec2ForSpeechClassification", "EmotionModel", "Wav2Vec2MeanPoolRegression"}
)
# Checkpoint keys a model may lack without running on random weights: SpecAugment's mask
# embedding is used only in training.
_TRAINING_ONLY_KEYS = frozenset({"wav2vec2.masked_spec_embed"})


class EmotionModelError(RuntimeError):
    """The checkpoint cannot be run honestly (missing, unknown head, head weights mismatch)."""


class RegressionHead(nn.Module):
    """dense -> tanh -> out_proj over pooled states (dropout is inactive at inference)."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.final_dropout)
        self.out_proj = nn.Linear(config.hidden_size, _num_labels(config))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.dense(self.dropout(pooled)))
        out: torch.Tensor = self.out_proj(self.dropout(hidden))
        return out


# transformers' model base class has untyped methods (__init_subclass__, post_init).
class Wav2Vec2MeanPoolRegression(Wav2Vec2PreTrainedModel):  # type: ignore[no-untyped-call]
    """wav2vec2 encoder, mean over valid frames, `RegressionHead`: audeering's layout."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__(config)
        self.wav2vec2 = Wav2Vec2Model(config)
        self.classifier = RegressionHead(config)
        self.post_init()  # type: ignore[no-untyped-call]  # untyped in transformers

    def forward(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden: torch.Tensor = self.wav2vec2(
            input_values, attention_mask=attention_mask
        ).last_hidden_state
        if attention_mask is None:
            pooled = hidden.mean(dim=1)
        else:
            mask = self._get_feature_vector_attention_mask(
                hidden.shape[1],
                attention_mask,  # type: ignore[arg-type]  # annotated LongTensor, any int tensor works
            )
            weights = mask.to(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        out: torch.Tensor = self.classifier(pooled)
        return out


def _num_labels(config: PretrainedConfig) -> int:
    if not config.num_labels:
        raise EmotionModelError("config.num_labels is not set: the head's outputs are unknown")
    return int(config.num_labels)


def _checkpoint_keys(path: Path) -> set[str]:
    """Weight names in the checkpoint (safetensors, sharded index or a torch .bin)."""
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (path / index).exists():
            return set(json.loads((path / index).read_text())["weight_map"])
    if (path / "model.safetensors").exists():
        from safetensors import safe_open

        with safe_open(str(path / "model.safetensors"), framework="pt") as f:
            return set(f.keys())
    if (path / "pytorch_model.bin").exists():
        state = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
        return set(state)
    raise EmotionModelError(f"no model weights in {path}")


def _head_kind(config: PretrainedConfig, keys: set[str]) -> str:
    """'regression' or 'classification': the config's architecture, else the weight names."""
    archs = list(getattr(config, "architectures", None) or [])
    if any(a in REGRESSION_ARCHITECTURES for a in archs):
        return "regression"
    if archs:
        return "classification"
    if {"classifier.dense.weight", "classifier.out_proj.weight"} <= keys:
        return "regression"
    return "classification"


def _labels(config: PretrainedConfig, head: str) -> tuple[list[str], bool]:
    """Output names in order and whether they are the dimensions (arousal/dominance/valence)."""
    n = _num_labels(config)
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    names = [id2label.get(i, f"LABEL_{i}") for i in range(n)]
    lowered = [name.lower() for name in names]
    if set(lowered) <= set(DIMENSIONS) and len(set(lowered)) == n:
        return lowered, True
    generic = all(name == f"LABEL_{i}" for i, name in enumerate(names))
    if head == "regression" and generic and n == len(DEFAULT_DIMENSION_ORDER):
        return list(DEFAULT_DIMENSION_ORDER), True
    if generic:
        raise EmotionModelError(
            f"config.id2label names no emotions ({names}); cannot label the model's outputs"
        )
    return names, False


class EmotionModel:
    """A local emotion checkpoint, loaded on first use (thread-safe) and run in batches."""

    def __init__(
        self, path: str, device: str = "auto", batch_size: int = 8, min_seconds: float = 0.25
    ) -> None:
        self.path = Path(path)
        self.requested_device = device
        self.batch_size = max(1, batch_size)
        self.min_samples = max(400, int(min_seconds * SAMPLE_RATE))
        self._lock = threading.Lock()
        self._model: nn.Module | None = None
        self._extractor: Wav2Vec2FeatureExtractor | None = None
        self._load_error: EmotionModelError | None = None
        self.head = ""
        self.labels: list[str] = []
        self.dimensional = False
        self.device = ""
        self.dtype = ""
        self._pad_batches = False

    @property
    def name(self) -> str:
        return self.path.name

    def provenance(self) -> dict[str, Any]:
        """Which model, head, device and precision made an output."""
        return {"model": self.name, "head": self.head, "device": self.device, "dtype": self.dtype}

    def _load(self) -> nn.Module:
        # Caller holds the lock. A failed load is remembered: a worker does not retry a
        # multi-GB load for every segment, and every segment reports the same error.
        if self._model is not None:
            return self._model
        if self._load_error is not None:
            raise self._load_error
        try:
            self._model = self._load_checked()
        except EmotionModelError as exc:
            self._load_error = exc
            raise
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            self._load_error = EmotionModelError(f"cannot load {self.path}: {exc}")
            raise self._load_error from exc
        return self._model

    def _load_checked(self) -> nn.Module:
        if not self.path.is_dir():
            raise EmotionModelError(f"emotion model directory {self.path} does not exist")
        config = AutoConfig.from_pretrained(self.path, local_files_only=True)
        keys = _checkpoint_keys(self.path)
        self.head = _head_kind(config, keys)
        self.labels, self.dimensional = _labels(config, self.head)
        loader: Any = AutoModelForAudioClassification
        if self.head == "regression":
            if config.model_type != "wav2vec2":
                raise EmotionModelError(
                    f"regression head supported on wav2vec2 only, not {config.model_type}"
                )
            if getattr(config, "pooling_mode", "mean") != "mean":
                raise EmotionModelError(f"pooling_mode {config.pooling_mode!r} is not 'mean'")
            loader = Wav2Vec2MeanPoolRegression
        model, info = loader.from_pretrained(
            self.path, config=config, local_files_only=True, output_loading_info=True
        )
        missing = set(info["missing_keys"]) - _TRAINING_ONLY_KEYS
        unexpected = set(info["unexpected_keys"])
        mismatched = info.get("mismatched_keys") or []
        if missing or unexpected or mismatched:
            # Never run a head (or encoder) that from_pretrained initialized at random.
            raise EmotionModelError(
                f"{self.path} does not match {type(model).__name__}: "
                f"missing {sorted(missing)}, unexpected {sorted(unexpected)}, "
                f"mismatched {sorted(map(str, mismatched))}"
            )
        device = self.requested_device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model = model.to(device)
        if device.startswith("cuda"):
            model = model.half()  # fp16 halves memory and doubles throughput on GPUs
        model.eval()
        self.device, self.dtype = device, str(next(model.parameters()).dtype).split(".")[-1]
        if (self.path / "preprocessor_config.json").exists():
            self._extractor = Wav2Vec2FeatureExtractor.from_pretrained(
                self.path, local_files_only=True
            )
        else:
            # Emotion fine-tunes normalize each utterance to zero mean, unit variance.
            self._extractor = Wav2Vec2FeatureExtractor(  # type: ignore[no-untyped-call]  # untyped in transformers
                sampling_rate=SAMPLE_RATE, do_normalize=True, return_attention_mask=True
            )
        # Padded batches equal one-by-one runs only when no layer normalizes across time:
        # "layer" feature extractors (large/robust wav2vec2) take an attention mask; the
        # "group" norm of base models sees padding, so those batch equal lengths only.
        self._pad_batches = getattr(config, "feat_extract_norm", "layer") == "layer"
        loaded: nn.Module = model
        return loaded

    def load(self) -> None:
        """Load now (raises `EmotionModelError`); otherwise the first `predict` loads."""
        with self._lock:
            self._load()

    def warm(self) -> None:
        """Load and run one tiny inference, so kernels and allocators are ready."""
        self.predict([np.zeros(self.min_samples, dtype=np.float32)])

    def predict(self, audios: Sequence[npt.NDArray[np.floating[Any]]]) -> list[dict[str, Any]]:
        """One result per audio (16 kHz mono float), in order; see `_result` for the layout."""
        if not audios:
            return []
        with self._lock:
            model = self._load()
            results: list[dict[str, Any] | None] = [None] * len(audios)
            for batch in self._batches([len(a) for a in audios]):
                outputs = self._forward(model, [audios[i] for i in batch])
                for i, row in zip(batch, outputs, strict=True):
                    results[i] = self._result(row)
        return [r for r in results if r is not None]

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        # Similar lengths together: less padding, less wasted compute.
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        for i in order:
            last = batches[-1] if batches else None
            fits = last is not None and len(last) < self.batch_size
            if fits and last is not None and (self._pad_batches or lengths[last[0]] == lengths[i]):
                last.append(i)
            else:
                batches.append([i])
        return batches

    def _forward(self, model: nn.Module, audios: list[npt.NDArray[np.floating[Any]]]) -> np.ndarray:
        assert self._extractor is not None
        clips = []
        for a in audios:
            clip = np.asarray(a, dtype=np.float32).ravel()
            if clip.size < self.min_samples:
                clip = np.pad(clip, (0, self.min_samples - clip.size))
            clips.append(clip)
        features = self._extractor(
            clips,
            sampling_rate=SAMPLE_RATE,
            padding=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        params = next(model.parameters())
        values = features["input_values"].to(params.device, params.dtype)
        mask = features["attention_mask"].to(params.device) if self._pad_batches else None
        with torch.inference_mode():
            out = model(values, attention_mask=mask)
        logits = out if isinstance(out, torch.Tensor) else out.logits
        return np.asarray(logits.float().cpu().numpy(), dtype=np.float64)

    def _result(self, row: np.ndarray) -> dict[str, Any]:
        if not np.all(np.isfinite(row)):
            # fp16 overflow or a broken checkpoint: no number is better than a wrong one.
            raise EmotionModelError(f"{self.name} produced non-finite outputs {row.tolist()}")
        result: dict[str, Any] = {**dict.fromkeys(DIMENSIONS), "categorical": None}
        if self.dimensional:
            # Scores are clipped to 0-1: the dimensional models are trained on targets
            # normalized to that range; a slight overshoot is not a stronger emotion.
            for name, value in zip(self.labels, row, strict=True):
                score = min(1.0, max(0.0, float(value)))
                result[name] = {"score": round(score, 4), "level": dimension_level(score)}
            return result
        shifted = np.exp(row - row.max())
        probs = shifted / shifted.sum()
        best = int(np.argmax(probs))
        result["categorical"] = {
            "primary": self.labels[best],
            "confidence": round(float(probs[best]), 4),
            "scores": {n: round(float(p), 4) for n, p in zip(self.labels, probs, strict=True)},
        }
        return result
