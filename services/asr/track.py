"""One speaker track's streaming state, and the requests and outputs the tracker trades in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from services.asr.agreement import LocalAgreement
from shared.audio_log import window
from shared.protocol import WORKING_SAMPLE_RATE
from shared.schemas import Segment, Word

SR = WORKING_SAMPLE_RATE
# Words that start this far past the utterance end belong to the next one.
COVER_TOLERANCE = int(0.2 * SR)
# Audio kept before an utterance opens, for the VAD's pre-pad.
PREROLL = SR
# A cap cut never lands in the last second: those words are still unstable.
CUT_GUARD_S = 1.0
# Context audio starts this long before the first word of the oldest final it holds.
CONTEXT_LEAD = int(0.1 * SR)

Kind = Literal["partial", "final", "cut"]
# Final-quality decodes (finals, cap cuts, the decode at a pause) and periodic partials
# are separate lanes: a track may have one of each in flight, so a final never waits
# for the partial that was running when speech stopped.
Lane = Literal["quality", "partial"]
URGENCY = {"final": 0, "cut": 1, "partial": 2}
PERIODIC = 3


@dataclass(slots=True)
class DecodeRequest:
    channel: int
    kind: Kind
    seg_id: str
    start_pos: int
    end_pos: int
    audio: np.ndarray
    prompt: str
    generation: int
    # Final quality (beam search): finals, cap cuts and the decode at a pause, whose
    # hypothesis a final may reuse. Periodic partials decode greedily.
    final_quality: bool = True
    # Audio of the track's recent finals just before `audio`, and their text (forced
    # as the decoder prefix). Empty for partials and when context is off.
    context: np.ndarray | None = None
    prefix: str = ""
    # The track's count of final-quality requests when this one was built: a partial
    # built before a final-quality decode is older than that decode's result.
    epoch: int = 0

    @property
    def lane(self) -> Lane:
        return "quality" if self.final_quality else "partial"


@dataclass(slots=True)
class Output:
    """A segment to publish; finals carry the checkpoint to save atomically with them."""

    segment: Segment
    final: bool
    channel: int
    checkpoint: dict[str, Any] | None = None
    end_pos: int = 0


@dataclass
class Track:
    """One speaker track (a channel) of the session."""

    channel: int
    speaker_id: str | None
    chunks: list[tuple[str, int, np.ndarray]] = field(default_factory=list)
    pos: int = 0  # audio received up to this sample
    committed_pos: int = 0  # everything before is final or silence
    committed_text: str = ""
    # Recent finals with text: (first word's sample position, text), oldest first.
    history: list[tuple[int, str]] = field(default_factory=list)
    utt_start: int | None = None
    utt_end: int | None = None
    pause_pos: int | None = None
    # Utterances that began while the open one was still finalizing (its end seen, its
    # decode waiting or running): [start, end or None], opened in order. Under load a
    # final can wait seconds for the decode slot; several utterances may pass meanwhile.
    queued: list[list[int | None]] = field(default_factory=list)
    revision: int = 0
    generation: int = 0
    # A decode of that lane is claimed: waiting for a decode slot or running.
    quality_busy: bool = False
    partial_busy: bool = False
    quality_epoch: int = 0
    # Requests built and not yet answered: decodes actually running.
    decoding: int = 0
    last_decoded_pos: int = 0
    last_hyp: list[Word] | None = None
    last_hyp_final_quality: bool = False
    # avg_logprob and no_speech_prob of the decode behind `last_hyp` (what a final reuses).
    last_scores: tuple[float | None, float | None] = (None, None)
    agreement: LocalAgreement = field(default_factory=LocalAgreement)
    finals: int = 0

    @property
    def seg_id(self) -> str:
        return f"seg-{self.channel}-{self.utt_start}"

    def audio(self, start: int, end: int) -> np.ndarray:
        return window(self.chunks, start, end)

    def trim(self, keep_from: int) -> None:
        self.chunks = [c for c in self.chunks if c[1] + len(c[2]) > keep_from]

    def oldest_id(self) -> str | None:
        return self.chunks[0][0] if self.chunks else None

    def to_state(self) -> dict[str, Any]:
        """What a takeover needs of this track (the tracker's checkpoint holds one each)."""
        return {
            "committed_pos": self.committed_pos,
            "open_start": self.utt_start,
            "text_tail": self.committed_text,
            "finals": self.finals,
            "history": [[pos, text] for pos, text in self.history],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from `to_state()`: audio is re-read from the committed position on."""
        self.committed_pos = self.pos = int(state["committed_pos"])
        self.committed_text = state.get("text_tail", "")
        self.finals = int(state.get("finals", 0))
        self.history = [(int(pos), str(text)) for pos, text in state.get("history", [])]
        if state.get("open_start") is not None:
            self.utt_start = int(state["open_start"])
