"""Enrich-stage speed: prosody ms per second of audio, enrich per segment, emotion-model time."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench.machine import machine_info, source_revision
from services.enrich.core import Enricher
from services.enrich.prosody import SAMPLE_RATE, extract_prosody
from services.enrich.settings import EnrichSettings
from shared.schemas import Segment, Word

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "enrich"
SETTINGS = EnrichSettings()


def fixture_segments() -> list[tuple[Segment, np.ndarray]]:
    """Every segment of the committed enrich fixtures with exactly its audio."""
    items = []
    for meta_path in sorted(FIXTURES.glob("*.json")):
        audio, _ = sf.read(meta_path.with_suffix(".flac"), dtype="float32")
        for k, s in enumerate(json.loads(meta_path.read_text())["segments"]):
            words = [
                Word(word=w["word"], start=w["start"], end=w["end"], probability=1.0)
                for w in s["words"]
            ]
            seg = Segment(
                id=f"{meta_path.stem}-{k}", start=s["start_s"], end=s["end_s"], text=s["text"],
                words=words, speaker_id="spk_0", partial=False,
            )  # fmt: skip
            items.append(
                (seg, audio[round(s["start_s"] * SAMPLE_RATE) : round(s["end_s"] * SAMPLE_RATE)])
            )
    return items


def long_audio(items: list[tuple[Segment, np.ndarray]], seconds: float) -> np.ndarray:
    """Fixture speech repeated to `seconds` (a long VAD segment, a monologue)."""
    joined = np.concatenate([a for _, a in items])
    return np.resize(joined, int(seconds * SAMPLE_RATE)).astype(np.float32)


def _timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    fn()  # first call outside the figures: lazy imports, FFT plan caches
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _row(name: str, values_ms: list[float], unit: str) -> dict[str, Any]:
    return {
        "case": name,
        "unit": unit,
        "n": len(values_ms),
        "p50": round(float(np.percentile(values_ms, 50)), 3),
        "p95": round(float(np.percentile(values_ms, 95)), 3),
    }


def prosody_rows(items: list[tuple[Segment, np.ndarray]], repeats: int) -> list[dict[str, Any]]:
    per_second: list[float] = []
    for seg, audio in items:
        secs = len(audio) / SAMPLE_RATE
        times = _timed(partial(extract_prosody, audio, seg.words, seg.start, SETTINGS), repeats)
        per_second += [1000.0 * t / secs for t in times]
    rows = [_row(f"prosody, {len(items)} fixture segments (2-5 s)", per_second, "ms per s audio")]
    for seconds in (10.0, 30.0, 120.0):
        audio = long_audio(items, seconds)
        times = _timed(partial(extract_prosody, audio, [], 0.0, SETTINGS), max(3, repeats // 4))
        rows.append(
            _row(
                f"prosody, {seconds:.0f} s audio",
                [1000.0 * t / seconds for t in times],
                "ms per s audio",
            )
        )
    return rows


def enrich_rows(items: list[tuple[Segment, np.ndarray]], repeats: int) -> list[dict[str, Any]]:
    """Whole Enricher without a model (prosody, baseline, acoustic arousal, rendering)."""
    per_segment: list[float] = []
    for _ in range(repeats):
        enricher = Enricher(SETTINGS)
        for seg, audio in items:
            t0 = time.perf_counter()
            enricher.enrich(seg, audio)
            per_segment.append(1000.0 * (time.perf_counter() - t0))
    return [_row("enrich per segment, no model (acoustic arousal)", per_segment, "ms per segment")]


def _test_sized_model(path: Path) -> None:
    """The unit tests' size of wav2vec2 (1 layer, 32 wide) with a classification head."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    labels = ["angry", "happy", "neutral", "sad"]
    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="layer",
        classifier_proj_size=8, id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )  # fmt: skip
    torch.manual_seed(0)
    Wav2Vec2ForSequenceClassification(config).save_pretrained(path)


def emotion_rows(
    items: list[tuple[Segment, np.ndarray]], model_dir: str | None
) -> list[dict[str, Any]]:
    from services.enrich.emotion import EmotionModel

    with tempfile.TemporaryDirectory() as tmp:
        path = model_dir or str(Path(tmp) / "test-sized-wav2vec2")
        if model_dir is None:
            _test_sized_model(Path(path))
        label = "test-sized model" if model_dir is None else Path(model_dir).name
        audios = [a for _, a in items]
        rows = []
        for batch_size in (1, 8):
            model = EmotionModel(path, batch_size=batch_size)
            t0 = time.perf_counter()
            model.warm()
            load_ms = 1000.0 * (time.perf_counter() - t0)
            times = _timed(partial(model.predict, audios), 10)
            per_segment = [1000.0 * t / len(audios) for t in times]
            row = _row(
                f"emotion, {label}, batch {batch_size} ({model.device})",
                per_segment,
                "ms per segment",
            )
            rows.append({**row, "load_and_warm_ms": round(load_ms, 1)})
        return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--emotion-model", help="a local checkpoint directory (default: a test-sized one)"
    )
    parser.add_argument("--no-emotion", action="store_true", help="skip the emotion model rows")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    items = fixture_segments()
    rows = prosody_rows(items, args.repeats) + enrich_rows(items, max(1, args.repeats // 4))
    if not args.no_emotion:
        rows += emotion_rows(items, args.emotion_model)
    machine = machine_info()
    print(f"machine: {machine['cpu_model']}, {machine['cpus']} CPUs, {machine['ram_gib']} GiB")
    print(f"{'case':<58} {'unit':<16} {'n':>5} {'p50':>9} {'p95':>9}")
    for r in rows:
        print(f"{r['case']:<58} {r['unit']:<16} {r['n']:>5} {r['p50']:>9.3f} {r['p95']:>9.3f}")
    if args.json:
        result = {"machine": machine, "source": source_revision(), "rows": rows}
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
