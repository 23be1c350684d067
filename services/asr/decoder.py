"""Whisper decoding through faster-whisper: the model replicas and the decode calls."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from services.asr.hypothesis import (
    Hypothesis,
    cut_loops,
    normalize_word,
    to_word,
    words_after_prefix,
)
from services.asr.model import (
    build_at_low_priority,
    choose_device,
    decode_slots,
    encoder_threads,
    resolve_model,
    whisper_class,
)
from services.asr.settings import AsrSettings
from shared.protocol import WORKING_SAMPLE_RATE
from shared.schemas import AsrProvenance

SAMPLE_RATE = WORKING_SAMPLE_RATE


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
        whisper = whisper_class()
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
        self.partial_model, self.priority_warning = build_at_low_priority(
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
        head = words_after_prefix(spoken, prefix)
        if not head:
            return None
        offset = len(context) / SAMPLE_RATE
        hyp = Hypothesis(audio_s=len(audio) / SAMPLE_RATE, language=info.language)
        # Words aligned inside the context repeat known speech.
        hyp.words = cut_loops([to_word(w, offset) for w in head if w.end - offset > 0])
        # The one segment's scores cover the forced prefix too: they describe the window.
        hyp.avg_logprob = round(float(first.avg_logprob), 4)
        hyp.no_speech_prob = round(float(first.no_speech_prob), 4)
        return hyp if hyp.words else None

    def _transcribe(
        self, audio: np.ndarray, prompt: str, language: str | None, final: bool, **extra: Any
    ) -> tuple[Any, Any]:
        """One faster-whisper call with the settings every decode shares; `extra` adds to them."""
        s = self.settings
        model = self.model if final else self.partial_model
        result: tuple[Any, Any] = model.transcribe(
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
        return result

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
            hyp.words.extend(to_word(w) for w in seg.words or [] if normalize_word(w.word))
        hyp.words = cut_loops(hyp.words)
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
