"""When a track needs a decode, and what goes into it: the streaming policy's rules."""

from __future__ import annotations

from dataclasses import dataclass

from services.asr.track import CONTEXT_LEAD, SR, DecodeRequest, Kind, Track


@dataclass(frozen=True, slots=True)
class DecodePolicy:
    """The thresholds of the streaming policy, in samples (built from seconds)."""

    partial_interval: int
    max_utterance: int
    prompt_chars: int
    # Ingest puts the end mark at (pause position + speech pad). Decoding exactly that
    # span at a pause makes the reused hypothesis the same decode a final would run,
    # so a final is a function of the audio log alone: identical after a takeover.
    speech_pad: int
    context: int

    @classmethod
    def from_seconds(
        cls,
        *,
        partial_interval_s: float,
        max_utterance_s: float,
        prompt_chars: int,
        speech_pad_s: float,
        context_s: float,
    ) -> DecodePolicy:
        return cls(
            partial_interval=int(partial_interval_s * SR),
            max_utterance=int(max_utterance_s * SR),
            prompt_chars=prompt_chars,
            speech_pad=int(speech_pad_s * SR),
            context=int(context_s * SR),
        )

    def quality_need(self, t: Track) -> Kind | None:
        """The final-quality decode the open utterance needs, if any."""
        if t.utt_start is None:
            return None
        if t.utt_end is not None:
            return "final"
        if t.pos - t.utt_start >= self.max_utterance:
            return "cut"
        if self.pause_span(t) is not None:
            return "partial"  # speech paused: decode now so the final needs no decode
        return None

    def partial_due(self, t: Track) -> bool:
        """A periodic partial is due: enough new speech, and no final-quality work ahead of it."""
        return (
            t.utt_start is not None
            and not t.quality_busy
            and self.quality_need(t) is None
            and t.pos - t.last_decoded_pos >= self.partial_interval
        )

    def pause_span(self, t: Track) -> int | None:
        """End of the would-be utterance at a pause, once its audio is all here."""
        if t.pause_pos is None:
            return None
        end = t.pause_pos + self.speech_pad
        if t.last_decoded_pos == end or t.pos < end:
            return None
        return end

    def prompt(self, text: str) -> str:
        return text[-self.prompt_chars :] if self.prompt_chars > 0 else ""

    def add_context(self, t: Track, req: DecodeRequest) -> None:
        """The recent finals that fit in one window with the utterance, as context."""
        chosen: list[tuple[int, str]] = []
        for pos, text in reversed(t.history):
            if req.end_pos - pos > self.context or pos >= req.start_pos:
                break
            chosen.insert(0, (pos, text))
        if not chosen:
            return
        req.context = t.audio(max(0, chosen[0][0] - CONTEXT_LEAD), req.start_pos)
        req.prefix = " ".join(text for _, text in chosen)
        # The prompt is then what was said before the context.
        committed = t.committed_text
        req.prompt = self.prompt(committed[: max(0, len(committed) - len(req.prefix) - 1)])
