"""The ingest session state machine: producer messages in, audio log entries and events out.

Error codes (`error` events of stage `ingest`; the entity makes replays dedupe):

| code                 | when                                                | effect            |
|----------------------|-----------------------------------------------------|-------------------|
| invalid_config       | start without config, bad JSON or fields, rate      | fatal: EndMark    |
|                      | outside min..max_sample_rate, channels outside      |                   |
|                      | 1..max_channels (Opus 1..2 at an Opus rate), bad    |                   |
|                      | language, > 64 KiB (shared/protocol.py)             |                   |
| unsupported_encoding | encoding not pcm_s16le, pcm_f32le or opus           | fatal: EndMark    |
| no_start             | stop before a valid start, or no start within       | fatal: EndMark    |
|                      | no_start_timeout_s (60 s) of registration           |                   |
| producer_timeout     | after a valid start, no producer message for        | fatal: EndMark;   |
|                      | producer_idle_timeout_s (300 s), Redis clock        | audio kept        |
| media_before_start   | media before a valid start                          | frame dropped     |
| duplicate_start      | any start after a valid start                       | ignored           |
| malformed_message    | unknown or missing type; seq missing, not ASCII     | message dropped   |
|                      | digits or < 1; media without data                   |                   |
| frame_too_large      | len(data) > max_frame_bytes                         | dropped, seq used |
| bad_frame_length     | PCM length not a multiple of width x channels       | dropped, seq used |
| duplicate_seq        | seq already received, buffered or passed over       | frame dropped     |
| seq_gap              | frames missing_from..missing_to not there within    | continues; no     |
|                      | the reorder window, or by stop                      | silence filled in |
| decode_failed        | Opus packet undecodable or empty                    | dropped, seq used |
| internal             | ingest raised on this input (a bug): the session    | fatal: EndMark    |
|                      | ends at the last committed audio                    |                   |

A `finalize` message closes every open utterance at the audio received so far (the VAD's
`pause` + `end` marks at that position, see StreamingVad.close_now); before `start` it
does nothing.

Entities: the inbox entry id for per-message errors, `<from>-<to>` for seq_gap, `session`
for no_start and producer_timeout. At most MAX_ERRORS_PER_CODE events per code and
session are published (fatal ones always); all are counted in the checkpoint (`errors`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from services.ingest.decode import AudioNormalizer, DecodeError, track_ids
from services.ingest.reorder import Released, ReorderBuffer
from services.ingest.settings import STAGE, IngestSettings
from services.ingest.vad import SileroModel, StreamingVad, VadState
from services.ingest.validate import (
    Finalize,
    Media,
    Rejected,
    Start,
    Stop,
    check_frame,
    parse_message,
)
from shared.audio_log import float_to_pcm
from shared.schemas import (
    AUDIO_SAMPLE_RATE,
    AudioChunk,
    AudioEntry,
    EndMark,
    Ready,
    ReadyPayload,
    SessionConfig,
)

CHECKPOINT_VERSION = 1
# A producer stuck in a loop must not flood the event stream consumers read.
MAX_ERRORS_PER_CODE = 100
FATAL_CODES = frozenset(
    {"invalid_config", "unsupported_encoding", "no_start", "internal", "producer_timeout"}
)
# A catching-up batch of large frames could make one huge log entry; readers of the log
# (asr, enrich) get it in pieces of at most this many samples (2 s).
MAX_CHUNK_SAMPLES = 2 * AUDIO_SAMPLE_RATE

# A frame waiting in the reorder window: its inbox entry id and bytes (None: rejected
# frame that still used up its seq, so it is not reported again as a gap).
_Held = tuple[str, bytes | None]


@dataclass(frozen=True, slots=True)
class ErrorNotice:
    """An `error` event to publish through `SessionLease.error`."""

    code: str
    message: str
    entity: str
    recoverable: bool
    detail: dict[str, object] = field(default_factory=dict)


Notice = Ready | ErrorNotice


@dataclass(slots=True)
class StepOutput:
    """What one batch of messages produced, in order: events first, then log entries."""

    notices: list[Notice] = field(default_factory=list)
    entries: list[AudioEntry] = field(default_factory=list)
    frames_accepted: int = 0
    errors_suppressed: int = 0


class IngestSession:
    """One session's ingest state; `handle_batch` is pure apart from CPU work."""

    def __init__(
        self,
        session_id: str,
        settings: IngestSettings,
        model: SileroModel,
        stages: Sequence[str],
    ) -> None:
        self.session_id = session_id
        self.settings = settings
        self.model = model
        self.stages = list(stages)
        self.config: SessionConfig | None = None
        self.ended = False
        self.last_entry_id = "0-0"
        self.reorder: ReorderBuffer[_Held] = ReorderBuffer(settings.reorder_window)
        self.positions: dict[int, int] = {}
        self.vads: dict[int, StreamingVad] = {}
        self.error_counts: dict[str, int] = {}
        self.frames = 0
        # Seconds spent in handle_batch, measured by the worker shell (no clock here).
        self.processing_s = 0.0
        self._normalizer: AudioNormalizer | None = None
        self._pending: dict[int, list[np.ndarray]] = {}

    # --- messages -----------------------------------------------------------------------

    def handle_batch(
        self, entries: Sequence[tuple[bytes | str, Mapping[bytes, bytes]]]
    ) -> StepOutput:
        """Apply inbox entries in order; stops at `stop` or a fatal error."""
        out = StepOutput()
        for entry_id, fields in entries:
            if self.ended:
                break
            entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            self.last_entry_id = entry
            self._handle(entry, fields, out)
        if not self.ended:
            self._emit_audio(out)
        return out

    def no_start_timeout(self, waited_s: float) -> StepOutput:
        """No valid start arrived in time: fatal `no_start`, EndMark."""
        out = StepOutput()
        if self.config is None and not self.ended:
            self._error(out, "no_start", f"no start within {waited_s:.0f} s", "session")
            self._end(out)
        return out

    def producer_timeout(self, idle_s: float) -> StepOutput:
        """The producer went quiet without `stop`: end the session with what it sent."""
        out = StepOutput()
        if self.config is not None and not self.ended:
            self._error(
                out, "producer_timeout", f"no producer message for {idle_s:.0f} s", "session"
            )
            self._end(out)
        return out

    def abort(self, reason: str) -> StepOutput:
        """End the session after an unexpected failure, touching no decoder or VAD state.

        Downstream stages wait for the EndMark; without it one hostile input that trips a
        bug would leave them waiting forever.
        """
        out = StepOutput()
        self._error(out, "internal", f"ingest failed: {reason}", "abort")
        out.entries.append(EndMark(pos=max(self.positions.values(), default=0)))
        self.ended = True
        return out

    @property
    def started(self) -> bool:
        return self.config is not None

    @property
    def duration_s(self) -> float:
        return max(self.positions.values(), default=0) / AUDIO_SAMPLE_RATE

    def _handle(self, entry: str, fields: Mapping[bytes, bytes], out: StepOutput) -> None:
        message = parse_message(fields, self.settings.limits)
        if isinstance(message, Rejected):
            if message.message_type == "start" and self.started:
                self._duplicate_start(entry, out)
            else:
                self._error(out, message.code, message.message, entry, **message.detail)
                if message.code in FATAL_CODES:
                    self._end(out)
        elif isinstance(message, Start):
            if self.started:
                self._duplicate_start(entry, out)
            else:
                self._start(message.config, out)
        elif isinstance(message, Media):
            self._media(entry, message, out)
        elif isinstance(message, Finalize):
            if self.started:
                self._finalize(out)
        elif isinstance(message, Stop):
            if not self.started:
                self._error(out, "no_start", "stop before any valid start", "session")
            self._end(out)

    def _duplicate_start(self, entry: str, out: StepOutput) -> None:
        self._error(out, "duplicate_start", "session already started; start ignored", entry)

    def _start(self, config: SessionConfig, out: StepOutput) -> None:
        self._configure(config)
        out.notices.append(
            Ready(
                session_id=self.session_id,
                id="ready",
                stage=STAGE,
                payload=ReadyPayload(
                    config=config,
                    stages=self.stages,
                    vad_speech_pad_ms=self.settings.vad_speech_pad_ms,
                ),
            )
        )

    def _configure(self, config: SessionConfig) -> None:
        self.config = config
        self._normalizer = AudioNormalizer(config)
        for track in track_ids(config):
            self.positions.setdefault(track, 0)
            if track not in self.vads:
                self.vads[track] = StreamingVad(self.model, track, self.settings)

    def _media(self, entry: str, media: Media, out: StepOutput) -> None:
        if self.config is None:
            self._error(out, "media_before_start", "media before start; frame dropped", entry)
            return
        if self.reorder.is_duplicate(media.seq):
            self._error(
                out, "duplicate_seq", f"seq {media.seq} already received", entry, seq=media.seq
            )
            return
        rejected = check_frame(media.data, self.config, self.settings.limits)
        if rejected is not None:
            self._error(
                out, rejected.code, rejected.message, entry, seq=media.seq, **rejected.detail
            )
        held: _Held = (entry, None if rejected else media.data)
        self._release(self.reorder.push(media.seq, held), out)

    def _release(self, released: Released[_Held], out: StepOutput) -> None:
        for gap in released.gaps:
            self._error(
                out,
                "seq_gap",
                f"frames {gap.first}..{gap.last} never arrived",
                f"{gap.first}-{gap.last}",
                missing_from=gap.first,
                missing_to=gap.last,
            )
        assert self._normalizer is not None, "frames are only released after start"
        for seq, (entry, data) in released.frames:
            if data is None:
                continue
            try:
                tracks = self._normalizer.decode(data)
            except DecodeError as exc:
                self._error(out, "decode_failed", str(exc), entry, seq=seq)
                continue
            out.frames_accepted += 1
            self.frames += 1
            for track, samples in tracks.items():
                self._pending.setdefault(track, []).append(samples)

    # --- output -------------------------------------------------------------------------

    def _emit_audio(self, out: StepOutput) -> None:
        # Every chunk of the batch goes before any mark: a mark's position is then always
        # inside audio already in the log when asr reads the mark.
        marks = []
        for track in sorted(self._pending):
            parts = [p for p in self._pending[track] if p.size]
            if not parts:
                continue
            samples = np.concatenate(parts)
            pos = self.positions[track]
            for offset in range(0, len(samples), MAX_CHUNK_SAMPLES):
                piece = samples[offset : offset + MAX_CHUNK_SAMPLES]
                out.entries.append(
                    AudioChunk(channel=track, pos=pos + offset, pcm=float_to_pcm(piece))
                )
            self.positions[track] = pos + len(samples)
            marks.extend(self.vads[track].feed(samples))
        self._pending.clear()
        out.entries.extend(marks)

    def _finalize(self, out: StepOutput) -> None:
        """Close every open utterance at the audio released so far (producer `finalize`).

        The batch's audio so far goes out first, so each mark lies inside the log and the
        marks depend only on the messages before `finalize`, never on how the inbox was
        cut into batches: a takeover replaying from the checkpoint derives the same marks.
        Frames still waiting in the reorder window come after it.
        """
        self._emit_audio(out)
        for track in sorted(self.vads):
            out.entries.extend(self.vads[track].close_now(self.positions[track]))

    def _end(self, out: StepOutput) -> None:
        """Close the session for ingest: flush everything, final marks, EndMark."""
        if self._normalizer is not None:
            self._release(self.reorder.flush(), out)
            for track, tail in self._normalizer.flush().items():
                self._pending.setdefault(track, []).append(tail)
        self._emit_audio(out)
        for track in sorted(self.vads):
            out.entries.extend(self.vads[track].finish(self.positions[track]))
        out.entries.append(EndMark(pos=max(self.positions.values(), default=0)))
        self.ended = True

    def _error(self, out: StepOutput, code: str, message: str, entity: str, **detail: Any) -> None:
        count = self.error_counts.get(code, 0) + 1
        self.error_counts[code] = count
        fatal = code in FATAL_CODES
        if count > MAX_ERRORS_PER_CODE and not fatal:
            out.errors_suppressed += 1
            return
        out.notices.append(ErrorNotice(code, message, entity, not fatal, detail))

    # --- checkpoint ---------------------------------------------------------------------

    def to_checkpoint(self) -> dict[str, Any]:
        """JSON-ready state after the last handled batch (see worker.py for the format)."""
        return {
            "version": CHECKPOINT_VERSION,
            "last_id": self.last_entry_id,
            "ended": self.ended,
            "config": msgspec.to_builtins(self.config) if self.config else None,
            "expected_seq": self.reorder.expected,
            "buffered": [
                [seq, entry, data is not None]
                for seq, (entry, data) in sorted(self.reorder.buffered.items())
            ],
            "tracks": [
                {"channel": t, "pos": pos, "vad": self.vads[t].snapshot().to_dict()}
                for t, pos in sorted(self.positions.items())
            ],
            "errors": dict(self.error_counts),
            "frames": self.frames,
            "summary": {
                "duration_s": round(self.duration_s, 3),
                "processing_s": round(self.processing_s, 3),
            },
        }

    def buffered_entry_ids(self) -> list[str]:
        """Inbox entries whose bytes the reorder window held; refetch them on resume."""
        return [entry for entry, data in self.reorder.buffered.values() if data is not None]

    @classmethod
    def from_checkpoint(
        cls,
        state: Mapping[str, Any],
        session_id: str,
        settings: IngestSettings,
        model: SileroModel,
        stages: Sequence[str],
        refetched: Mapping[str, Mapping[bytes, bytes]],
    ) -> IngestSession:
        """Resume where the checkpoint (and so the audio log) ends.

        `refetched` maps the ids of `buffered` entries to their inbox fields; one that is
        gone is treated as never received (a later seq_gap reports it). Resampler and
        model state start fresh; VAD decisions and positions carry over.
        """
        session = cls(session_id, settings, model, stages)
        session.last_entry_id = str(state["last_id"])
        session.ended = bool(state["ended"])
        session.error_counts = {str(k): int(v) for k, v in state.get("errors", {}).items()}
        session.frames = int(state.get("frames", 0))
        session.processing_s = float(state.get("summary", {}).get("processing_s", 0.0))
        if state.get("config") is not None:
            session._configure(msgspec.convert(state["config"], SessionConfig))
        for track in state.get("tracks", []):
            channel, pos = int(track["channel"]), int(track["pos"])
            vad_state = VadState.from_dict(track["vad"])
            # The next window starts where the samples the VAD had not windowed yet (in
            # the log already, and in `pending`) start, so a takeover derives the marks at
            # the same positions as a run without one. A state without `pending` restarts
            # its windows at the end of the log.
            vad_state.pos = pos - len(vad_state.pending or [])
            session.positions[channel] = pos
            session.vads[channel] = StreamingVad(model, channel, settings, vad_state)
        buffered: dict[int, _Held] = {}
        for seq, entry, has_data in state.get("buffered", []):
            if not has_data:
                buffered[int(seq)] = (str(entry), None)
                continue
            fields = refetched.get(str(entry))
            message = parse_message(fields, settings.limits) if fields is not None else None
            if isinstance(message, Media):
                buffered[int(seq)] = (str(entry), message.data)
        session.reorder = ReorderBuffer(
            settings.reorder_window, int(state["expected_seq"]), buffered
        )
        return session
