"""Streaming silero VAD on 16 kHz tracks (onnxruntime on numpy, no torch) -> VadMark lists."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime

from services.ingest.settings import IngestSettings
from shared.schemas import AUDIO_SAMPLE_RATE, VadMark

# The model's contract at 16 kHz: 512-sample windows, each preceded by the last 64
# samples of the previous one (see silero_vad/utils_vad.py OnnxWrapper).
WINDOW = 512
CONTEXT = 64
# A pause is declared below threshold - 0.15, silero's own hysteresis (VADIterator).
PAUSE_HYSTERESIS = 0.15

Phase = Literal["silence", "candidate", "speech"]


def default_model_path() -> Path:
    """`silero_vad/data/silero_vad.onnx` of the installed wheel, found without importing it.

    Importing the `silero_vad` package imports torch, which the worker path must not load.
    """
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the silero-vad wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"


class SileroModel:
    """The silero VAD ONNX model, loaded once per worker and shared by every track.

    `InferenceSession.run` is thread-safe, so tracks of many sessions may call it from
    worker threads at once; each track carries its own recurrent state.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.path = Path(path) if path is not None else default_model_path()
        self._session = onnxruntime.InferenceSession(
            str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._sr = np.array(AUDIO_SAMPLE_RATE, dtype=np.int64)

    @staticmethod
    def initial_state() -> np.ndarray:
        return np.zeros((2, 1, 128), dtype=np.float32)

    def probability(self, window: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        """Speech probability of one (CONTEXT + WINDOW)-sample input and the next state."""
        out, next_state = self._session.run(
            None, {"input": window.reshape(1, -1), "state": state, "sr": self._sr}
        )
        return float(out[0, 0]), next_state


@dataclass(slots=True)
class VadState:
    """The whole state of one track's VAD, checkpointed so a resume continues bit-exactly.

    The recurrent model state, the window context and the samples waiting for a full
    window ride along: without them a resumed VAD places later marks a few ms apart,
    and the asr then decodes different spans than a fault-free run would.
    """

    phase: Phase = "silence"
    # Start of the next window, in samples of the track.
    pos: int = 0
    candidate_start: int = 0
    last_speech_end: int = 0
    paused: bool = False
    silence_since: int | None = None
    # Position of the last `end` mark: a new `start` never reaches back before it.
    last_end: int = 0
    model_state: list[float] | None = None
    context: list[float] | None = None
    pending: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        # Shallow: `snapshot` builds fresh lists each time. dataclasses.asdict copied
        # each of their ~800 floats one by one, about 1 ms a track on every commit.
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> VadState:
        return cls(**raw)


class StreamingVad:
    """One track's VAD: feed 16 kHz samples in order, get start/pause/resume/end marks."""

    def __init__(
        self,
        model: SileroModel,
        channel: int,
        settings: IngestSettings,
        state: VadState | None = None,
    ) -> None:
        self.model = model
        self.channel = channel
        self.state = state or VadState()
        ms = AUDIO_SAMPLE_RATE // 1000
        self.threshold = settings.vad_threshold
        self.min_silence = settings.vad_min_silence_ms * ms
        self.min_speech = settings.vad_min_speech_ms * ms
        self.pad = settings.vad_speech_pad_ms * ms
        initial = model.initial_state()
        st = self.state
        self._model_state = (
            np.asarray(st.model_state, np.float32).reshape(initial.shape)
            if st.model_state is not None
            else initial
        )
        self._context = (
            np.asarray(st.context, np.float32)
            if st.context is not None
            else np.zeros(CONTEXT, np.float32)
        )
        self._pending = np.asarray(st.pending or [], np.float32)

    def snapshot(self) -> VadState:
        """The state to checkpoint, model state and buffered samples included."""
        self.state.model_state = self._model_state.ravel().tolist()
        self.state.context = self._context.tolist()
        self.state.pending = self._pending.tolist()
        return self.state

    @property
    def in_speech(self) -> bool:
        return self.state.phase == "speech"

    def feed(self, samples: np.ndarray) -> list[VadMark]:
        """Run every complete window of the samples fed so far; marks in position order."""
        marks: list[VadMark] = []
        buffered = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        whole = len(buffered) // WINDOW * WINDOW
        for offset in range(0, whole, WINDOW):
            window = buffered[offset : offset + WINDOW]
            prob, self._model_state = self.model.probability(
                np.concatenate([self._context, window]), self._model_state
            )
            self._context = window[-CONTEXT:]
            self._step(prob, marks)
            self.state.pos += WINDOW
        self._pending = buffered[whole:]
        return marks

    def finish(self, audio_end: int) -> list[VadMark]:
        """End of the track: close open speech at most at `audio_end`; drop a short burst."""
        st = self.state
        marks: list[VadMark] = []
        if st.phase == "speech":
            marks.append(self._end(min(st.last_speech_end + self.pad, audio_end)))
        st.phase = "silence"
        st.silence_since = None
        return marks

    def close_now(self, audio_end: int) -> list[VadMark]:
        """Close open speech at `audio_end` (the producer's `finalize`): the marks a real
        end of speech would give, so asr finalizes the utterance as it does at a pause.

        Speaking: `pause` and `end` at `audio_end`. Already paused: `end` where the pause
        would have put it (speech end + pad), at most `audio_end`. A candidate burst is
        left alone: it was never announced, and it becomes speech or noise as usual.
        Speech that goes on opens a new utterance no earlier than `audio_end`.
        """
        st = self.state
        if st.phase != "speech":
            return []
        if st.paused:
            return [self._end(min(st.last_speech_end + self.pad, audio_end))]
        return [self._mark(audio_end, "pause"), self._end(audio_end)]

    def _step(self, prob: float, marks: list[VadMark]) -> None:
        st = self.state
        window_end = st.pos + WINDOW
        speech = prob >= self.threshold
        quiet = prob < self.threshold - PAUSE_HYSTERESIS
        if st.phase == "silence":
            if speech:
                st.phase = "candidate"
                st.candidate_start = st.pos
                st.last_speech_end = window_end
                st.silence_since = None
                self._promote_if_long(marks)
        elif st.phase == "candidate":
            if speech:
                st.last_speech_end = window_end
                st.silence_since = None
                self._promote_if_long(marks)
            elif quiet:
                if st.silence_since is None:
                    st.silence_since = st.last_speech_end
                if window_end - st.silence_since >= self.min_silence:
                    # The burst ended shorter than vad_min_speech_ms: it never was speech.
                    st.phase = "silence"
                    st.silence_since = None
        elif speech:
            st.last_speech_end = window_end
            if st.paused:
                marks.append(self._mark(st.pos, "resume"))
                st.paused = False
            st.silence_since = None
        elif quiet:
            if not st.paused or st.silence_since is None:
                marks.append(self._mark(st.last_speech_end, "pause"))
                st.paused = True
                st.silence_since = st.last_speech_end
            if window_end - st.silence_since >= self.min_silence:
                marks.append(self._end(min(st.last_speech_end + self.pad, window_end)))

    def _promote_if_long(self, marks: list[VadMark]) -> None:
        st = self.state
        if st.last_speech_end - st.candidate_start < self.min_speech:
            return
        st.phase = "speech"
        st.paused = False
        marks.append(self._mark(max(st.candidate_start - self.pad, st.last_end, 0), "start"))

    def _end(self, pos: int) -> VadMark:
        st = self.state
        st.phase = "silence"
        st.paused = False
        st.silence_since = None
        st.last_end = pos
        return self._mark(pos, "end")

    def _mark(self, pos: int, state: Literal["start", "pause", "resume", "end"]) -> VadMark:
        return VadMark(channel=self.channel, pos=pos, state=state)
