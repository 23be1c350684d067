"""Streaming policy for one session: audio and VAD marks in, decode requests and segments out.

Pure: no Redis, no clock, no model. The worker shell feeds audio log entries, asks for
the next decode, runs it, and hands the hypothesis back; segments come out as `Output`s.
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.asr.agreement import LocalAgreement, join_words
from services.asr.hypothesis import Hypothesis
from services.asr.policy import DecodePolicy
from services.asr.track import (
    CONTEXT_LEAD,
    COVER_TOLERANCE,
    CUT_GUARD_S,
    PERIODIC,
    PREROLL,
    SR,
    URGENCY,
    DecodeRequest,
    Kind,
    Lane,
    Output,
    Track,
)
from shared.audio_log import pcm_to_float
from shared.schemas import AsrProvenance, AudioChunk, AudioEntry, EndMark, Segment, VadMark, Word

__all__ = ["SR", "DecodeRequest", "Kind", "Lane", "Output", "SessionTracker", "Track"]


class SessionTracker:
    """All tracks of one session plus the session-wide bits (end of audio, finals count)."""

    def __init__(
        self,
        session_id: str,
        *,
        partial_interval_s: float,
        max_utterance_s: float,
        prompt_chars: int,
        channels_as_speakers: bool,
        speech_pad_s: float = 0.12,
        context_s: float = 0.0,
        provenance: AsrProvenance,
        partial_beam_size: int | None = None,
        checkpoint: dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        self.policy = DecodePolicy.from_seconds(
            partial_interval_s=partial_interval_s,
            max_utterance_s=max_utterance_s,
            prompt_chars=prompt_chars,
            speech_pad_s=speech_pad_s,
            context_s=context_s,
        )
        self.channels_as_speakers = channels_as_speakers
        self.provenance = provenance
        # Periodic partials decode greedily (beam 1 unless configured): their segments
        # say so; finals and the decode at a pause use the provenance's (final) beam.
        self.partial_beam_size = (
            provenance.beam_size if partial_beam_size is None else partial_beam_size
        )
        self.tracks: dict[int, Track] = {}
        self.ended_at: int | None = None
        self.last_id: str | None = None
        self.decodes = 0
        # Seconds spent decoding, measured by the worker shell (no clock here).
        self.processing_s = 0.0
        self.outputs: list[Output] = []
        self._restore(checkpoint or {})

    # --- checkpoint ---------------------------------------------------------------------

    def _restore(self, state: dict[str, Any]) -> None:
        self.resume_id: str | None = state.get("resume_id")
        self.processing_s = float(state.get("summary", {}).get("processing_s", 0.0))
        for ch_text, t in state.get("tracks", {}).items():
            self._track(int(ch_text)).restore(t)

    def checkpoint(self) -> dict[str, Any]:
        # Held audio is context for decodes to come; once finished there are none.
        ids = [i for t in self.tracks.values() if (i := t.oldest_id()) is not None]
        resume = min(ids, key=_id_key) if ids and not self.finished else self.last_id
        return {
            "resume_id": resume,
            "tracks": {str(ch): t.to_state() for ch, t in self.tracks.items()},
            "summary": {
                "segments": sum(t.finals for t in self.tracks.values()),
                "model": self.provenance.model,
                "device": self.provenance.device,
                "processing_s": round(self.processing_s, 3),
            },
        }

    # --- input --------------------------------------------------------------------------

    def _track(self, channel: int) -> Track:
        if channel not in self.tracks:
            speaker = f"spk_{channel}" if self.channels_as_speakers else None
            self.tracks[channel] = Track(channel=channel, speaker_id=speaker)
        return self.tracks[channel]

    def feed(self, entry_id: str, entry: AudioEntry) -> None:
        """Apply one audio log entry (in log order)."""
        self.last_id = entry_id
        match entry:
            case AudioChunk():
                self._on_audio(entry_id, entry)
            case VadMark():
                self._on_vad(entry)
            case EndMark():
                self.ended_at = entry.pos
                for track in self.tracks.values():
                    if track.utt_start is not None and track.utt_end is None:
                        track.utt_end = max(track.utt_start, min(track.pos, entry.pos))
                        self._maybe_finalize_from_hypothesis(track)

    def _on_audio(self, entry_id: str, chunk: AudioChunk) -> None:
        track = self._track(chunk.channel)
        samples = pcm_to_float(chunk.pcm)
        end = chunk.pos + len(samples)
        if end <= self._keep_from(track):
            return  # replayed audio that is already final and not needed as context
        track.chunks.append((entry_id, chunk.pos, samples))
        track.pos = max(track.pos, end)
        if track.utt_start is None:
            # Finals too old to share a window with any utterance still to come.
            horizon = track.pos - PREROLL - self.policy.context
            track.history = [h for h in track.history if h[0] >= horizon]
            track.trim(self._keep_from(track))

    def _keep_from(self, t: Track) -> int:
        """The oldest sample a future decode can still need."""
        keep = t.committed_pos
        if t.utt_start is None:
            keep = max(keep, t.pos - PREROLL)
        if self.policy.context and t.history:
            keep = min(keep, t.history[0][0] - CONTEXT_LEAD)
        return max(keep, 0)

    def _on_vad(self, mark: VadMark) -> None:
        track = self._track(mark.channel)
        if mark.pos < track.committed_pos and mark.state != "end":
            return
        closing = track.utt_start is not None and track.utt_end is not None
        if mark.state == "start":
            if track.utt_start is None:
                self._open(track, max(mark.pos, track.committed_pos))
            elif closing:
                track.queued.append([mark.pos, None])
        elif closing:
            # Marks of queued utterances: only where they end matters.
            if mark.state == "end" and track.queued and track.queued[-1][1] is None:
                track.queued[-1][1] = mark.pos
        elif mark.state == "pause":
            if track.utt_start is not None:
                track.pause_pos = mark.pos
        elif mark.state == "resume":
            track.pause_pos = None
        elif (
            mark.state == "end"
            and track.utt_start is not None
            and track.utt_end is None
            and mark.pos > track.utt_start
        ):
            track.utt_end = mark.pos
            self._maybe_finalize_from_hypothesis(track)

    def _open(self, track: Track, start: int) -> None:
        track.utt_start = start
        track.utt_end = track.pause_pos = None
        track.revision = 0
        track.generation += 1
        track.last_decoded_pos = start
        track.last_hyp = None
        track.agreement = LocalAgreement()

    def set_revision_floor(self, channel: int, revision: int) -> None:
        """After a takeover: continue the open segment's revisions above what was published."""
        track = self.tracks.get(channel)
        if track is not None:
            track.revision = max(track.revision, revision)

    # --- decoding -----------------------------------------------------------------------

    def pending(self) -> Kind | None:
        """The most urgent decode some track could start now (finals first), or None."""
        best = self._most_urgent()
        return best[2] if best else None

    def claim(self) -> tuple[int, Lane] | None:
        """Reserve the most urgent decode some track can start now: (channel, lane).

        The request itself is built by `request_for` once a decode slot is free, from
        the audio there is by then. A claimed lane is not offered again until its
        result comes back (`on_result`) or `request_for` finds nothing left to do.
        """
        best = self._most_urgent()
        if best is None:
            return None
        urgency, t, _ = best
        lane: Lane = "partial" if urgency == PERIODIC else "quality"
        if lane == "quality":
            t.quality_busy = True
        else:
            t.partial_busy = True
        return t.channel, lane

    def next_request(self) -> DecodeRequest | None:
        """Claim the most urgent decode and build its request at once (sequential callers)."""
        claimed = self.claim()
        return self.request_for(*claimed) if claimed else None

    def _most_urgent(self) -> tuple[int, Track, Kind] | None:
        """(urgency, track, kind) of the most urgent unclaimed need; urgency PERIODIC is a
        periodic partial, every other one final-quality work."""
        best: tuple[int, Track, Kind] | None = None
        for t in self.tracks.values():
            kind = None if t.quality_busy else self.policy.quality_need(t)
            if kind is not None:
                candidate: tuple[int, Track, Kind] = (URGENCY[kind], t, kind)
            elif not t.partial_busy and self.policy.partial_due(t):
                candidate = (PERIODIC, t, "partial")
            else:
                continue
            if best is None or candidate[0] < best[0]:
                best = candidate
        return best

    def request_for(self, channel: int, lane: Lane) -> DecodeRequest | None:
        """Build the claimed decode from the newest audio (stale partials coalesce).

        None, and the claim released, when the track no longer needs it (an utterance
        closed, or final-quality work now supersedes a partial).
        """
        t = self.tracks[channel]
        kind: Kind | None
        if lane == "quality":
            kind = self.policy.quality_need(t)
        else:
            kind = "partial" if self.policy.partial_due(t) else None
        if kind is None:
            self._release(t, lane)
            return None
        assert t.utt_start is not None
        pause_end = self.policy.pause_span(t) if lane == "quality" and kind == "partial" else None
        if kind == "final" and t.utt_end is not None:
            end = t.utt_end
        elif pause_end is not None:
            end = pause_end
        else:
            end = t.pos
        if lane == "quality":
            t.quality_epoch += 1
        t.decoding += 1
        request = DecodeRequest(
            channel=t.channel,
            kind=kind,
            seg_id=t.seg_id,
            start_pos=t.utt_start,
            end_pos=end,
            audio=t.audio(t.utt_start, end),
            prompt=self.policy.prompt(t.committed_text),
            generation=t.generation,
            final_quality=lane == "quality",
            epoch=t.quality_epoch,
        )
        if request.final_quality:
            self.policy.add_context(t, request)
        return request

    @staticmethod
    def _release(t: Track, lane: Lane) -> None:
        if lane == "quality":
            t.quality_busy = False
        else:
            t.partial_busy = False

    def on_result(self, req: DecodeRequest, hyp: Hypothesis) -> None:
        """Take a finished decode; queues partial/final outputs."""
        self.decodes += 1
        t = self.tracks[req.channel]
        t.decoding -= 1
        self._release(t, req.lane)
        if req.generation != t.generation:
            return  # the utterance closed meanwhile; this hypothesis is moot
        if req.lane == "partial" and req.epoch != t.quality_epoch:
            # A final-quality decode began after this partial. Still running: show this
            # text meanwhile, but only that decode may stand in for a final. Already
            # back: this hypothesis is older than what it showed.
            if t.quality_busy:
                words = t.agreement.update(self._shift(req, hyp))
                self._emit_partial(t, words, hyp=hyp, final_quality=False)
            return
        words = self._shift(req, hyp)
        t.last_hyp, t.last_decoded_pos = words, req.end_pos
        t.last_hyp_final_quality = req.final_quality
        t.last_scores = (hyp.avg_logprob, hyp.no_speech_prob)
        if req.kind == "final":
            self._finalize(t, words, t.utt_end or req.end_pos)
        elif req.kind == "cut":
            self._cut(t, words, req.end_pos)
        elif not self._maybe_finalize_from_hypothesis(t):
            shown = t.agreement.update(words)
            self._emit_partial(t, shown, hyp=hyp, final_quality=req.final_quality)

    @staticmethod
    def _shift(req: DecodeRequest, hyp: Hypothesis) -> list[Word]:
        """The hypothesis' words in session audio time."""
        offset = req.start_pos / SR
        return [
            Word(word=w.word, start=round(w.start + offset, 3), end=round(w.end + offset, 3),
                 probability=w.probability)
            for w in hyp.words
        ]  # fmt: skip

    def _maybe_finalize_from_hypothesis(self, t: Track) -> bool:
        """VAD closed the utterance: reuse the last hypothesis if it covered the audio."""
        if t.utt_end is None or t.quality_busy or t.last_hyp is None:
            return False
        if not t.last_hyp_final_quality or t.last_decoded_pos != t.utt_end:
            return False  # only the very decode a final would run may stand in for it
        self._finalize(t, t.last_hyp, t.utt_end)
        return True

    # --- outputs --------------------------------------------------------------------------

    def _segment(
        self,
        t: Track,
        words: list[Word],
        *,
        partial: bool,
        end_pos: int,
        scores: tuple[float | None, float | None] = (None, None),
        final_quality: bool = True,
    ) -> Segment:
        assert t.utt_start is not None
        t.revision += 1
        beam = self.provenance.beam_size if final_quality else self.partial_beam_size
        return Segment(
            id=t.seg_id,
            start=words[0].start if words else t.utt_start / SR,
            end=words[-1].end if words else end_pos / SR,
            text=join_words(words),
            words=list(words),
            speaker_id=t.speaker_id,
            channel=t.channel if self.channels_as_speakers else None,
            language=self.provenance.language,
            partial=partial,
            revision=t.revision,
            stable_chars=t.agreement.stable_chars() if partial else len(join_words(words)),
            avg_logprob=scores[0],
            no_speech_prob=scores[1],
            asr=msgspec.structs.replace(self.provenance, decodes=self.decodes, beam_size=beam),
        )

    def _emit_partial(
        self, t: Track, words: list[Word], *, hyp: Hypothesis, final_quality: bool
    ) -> None:
        if not words:
            return
        segment = self._segment(
            t,
            words,
            partial=True,
            end_pos=t.pos,
            scores=(hyp.avg_logprob, hyp.no_speech_prob),
            final_quality=final_quality,
        )
        self.outputs.append(Output(segment, False, t.channel))

    def _finalize(
        self, t: Track, words: list[Word], end_pos: int, reopen_at: int | None = None
    ) -> None:
        words = [w for w in words if w.start * SR < end_pos + COVER_TOLERANCE]
        had_partials = t.revision > 0
        segment = (
            self._segment(t, words, partial=False, end_pos=end_pos, scores=t.last_scores)
            if words or had_partials
            else None
        )
        self._close(t, end_pos, words)
        if reopen_at is not None:
            # Speech goes on past a cap cut: the checkpoint must say the track is open.
            self._open(t, reopen_at)
        elif t.queued:
            start, end = t.queued.pop(0)
            assert start is not None
            self._open(t, max(start, t.committed_pos))
            if end is not None and end > (t.utt_start or 0):
                t.utt_end = end  # already over: it goes straight to a final decode
        if segment is not None:
            t.finals += 1
            self.outputs.append(Output(segment, True, t.channel, self.checkpoint(), end_pos))

    def _cut(self, t: Track, words: list[Word], decoded_to: int) -> None:
        """The utterance hit the cap: finalize up to a stable word boundary, keep going."""
        limit = decoded_to / SR - CUT_GUARD_S
        stable = [w for w in t.agreement.stable if w.end <= limit]
        head = stable or [w for w in words if w.end <= limit]
        cut_pos = round(head[-1].end * SR) if head else decoded_to - int(CUT_GUARD_S * SR)
        self._finalize(t, head, cut_pos, reopen_at=cut_pos)

    def _close(self, t: Track, end_pos: int, words: list[Word]) -> None:
        t.committed_pos = max(t.committed_pos, end_pos)
        text = join_words(words)
        if text:
            t.history.append((round(words[0].start * SR), text))
            t.history = [h for h in t.history if h[0] >= t.committed_pos - self.policy.context]
            # Keep a little more than the prompt needs (the prompt cuts it to prompt_chars).
            t.committed_text = (t.committed_text + " " + text).strip()[
                -max(4 * self.policy.prompt_chars, 1) :
            ]
        t.utt_start = t.utt_end = t.pause_pos = None
        t.last_hyp = None
        t.generation += 1
        t.trim(self._keep_from(t))

    def take_outputs(self) -> list[Output]:
        out, self.outputs = self.outputs, []
        return out

    @property
    def finished(self) -> bool:
        """All audio is final and no decode is running. A claim still waiting for a decode
        slot does not count: it has nothing left to decode and is dropped."""
        return self.ended_at is not None and all(
            t.utt_start is None and t.decoding == 0 for t in self.tracks.values()
        )


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
