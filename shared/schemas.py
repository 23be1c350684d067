"""msgspec Structs for every message on the bus: producer messages, audio log entries, events.

These Structs are the single source of truth; `schemas/*.json` is generated from them
(`make schemas`) and a test fails when the two drift. Fields are only ever added, with
defaults, so an older reader keeps working; `schema_version` rides on every event.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import Struct

SCHEMA_VERSION = 1
TRANSCRIPT_SCHEMA_VERSION = 2
STREAM_VERSION = 1
AUDIO_SAMPLE_RATE = 16_000

# --- producer messages (stream `ss:{sid}:in`) -------------------------------------------


class Features(Struct, kw_only=True, forbid_unknown_fields=True):
    """Optional pipeline features a producer asks for in `start`."""

    diarization: bool = False
    analytics: bool = False
    semantics: bool = False
    prosody: bool = False
    emotion: bool = False


class SessionConfig(Struct, kw_only=True, forbid_unknown_fields=True):
    """The `config` of a `start` message: how to read the media frames that follow."""

    sample_rate: int = AUDIO_SAMPLE_RATE
    encoding: str = "pcm_s16le"
    channels: int = 1
    # Call-centre stereo: each channel is its own speaker track (`spk_<channel>`).
    channels_as_speakers: bool = False
    language: str | None = None
    features: Features = msgspec.field(default_factory=Features)


class StartMessage(Struct, kw_only=True, tag="start", tag_field="type"):
    """First message of a session: its configuration."""

    config: SessionConfig


class MediaMessage(Struct, kw_only=True, tag="media", tag_field="type"):
    """One audio frame; `seq` orders frames (duplicates dropped, gaps reported)."""

    seq: int
    data: bytes


class StopMessage(Struct, kw_only=True, tag="stop", tag_field="type"):
    """The producer will send nothing more."""


class FinalizeMessage(Struct, kw_only=True, tag="finalize", tag_field="type"):
    """Close every open utterance at the audio received so far, as a VAD end would."""


ProducerMessage = StartMessage | MediaMessage | StopMessage | FinalizeMessage


# --- normalized audio log (stream `ss:{sid}:audio`) ---------------------------------------


class AudioChunk(Struct, kw_only=True, tag="audio", tag_field="kind"):
    """16 kHz mono s16le samples of one channel starting at sample `pos` of the session."""

    channel: int
    pos: int
    pcm: bytes


class VadMark(Struct, kw_only=True, tag="vad", tag_field="kind"):
    """A voice-activity boundary: `start` of speech, tentative `pause`, confirmed `end`."""

    channel: int
    pos: int
    state: Literal["start", "pause", "resume", "end"]


class EndMark(Struct, kw_only=True, tag="end", tag_field="kind"):
    """No audio follows; `pos` is the session's length in samples."""

    pos: int


AudioEntry = AudioChunk | VadMark | EndMark


# --- event payload parts ------------------------------------------------------------------


class Word(Struct, kw_only=True):
    word: str
    start: float
    end: float
    probability: float


class AsrProvenance(Struct, kw_only=True):
    """Which model, device and options made a segment (faster-whisper's TranscriptionInfo)."""

    model: str
    device: str
    compute_type: str
    beam_size: int
    language: str | None = None
    decodes: int = 0


class Segment(Struct, kw_only=True):
    """A transcript segment; `partial` segments may still change, finals never do."""

    id: str
    start: float
    end: float
    text: str
    words: list[Word] = msgspec.field(default_factory=list)
    speaker_id: str | None = None
    channel: int | None = None
    language: str | None = None
    partial: bool = True
    revision: int = 1
    # Characters of `text` that LocalAgreement has confirmed and that will not flicker.
    stable_chars: int = 0
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    audio_state: dict[str, Any] | None = None
    asr: AsrProvenance | None = None


class Turn(Struct, kw_only=True):
    id: str
    speaker_id: str | None
    start: float
    end: float
    text: str
    segment_ids: list[str] = msgspec.field(default_factory=list)
    partial: bool = True
    revision: int = 1


class Action(Struct, kw_only=True):
    text: str
    pattern: str
    speaker_id: str | None = None
    # A first-person promise ("I'll send…") rather than a request made of someone else.
    commitment: bool = False
    turn_id: str | None = None
    segment_ids: list[str] = msgspec.field(default_factory=list)


class SemanticAnnotation(Struct, kw_only=True):
    turn: Turn
    keywords: list[str] = msgspec.field(default_factory=list)
    risk_tags: list[str] = msgspec.field(default_factory=list)
    actions: list[Action] = msgspec.field(default_factory=list)
    questions: list[str] = msgspec.field(default_factory=list)
    question_count: int = 0
    corrections: list[str] = msgspec.field(default_factory=list)
    commitments: list[str] = msgspec.field(default_factory=list)
    context_size: int = 0
    # Ids of the same speaker's earlier turns that `corrections` correct.
    corrected_turn_ids: list[str] = msgspec.field(default_factory=list)
    # Commitments made in the session's final turns so far, this one included.
    commitment_ledger_size: int = 0
    # Per risk tag, the configured terms that fired (why the tag is there).
    risk_terms: dict[str, list[str]] = msgspec.field(default_factory=dict)
    # How keywords were made, e.g. "lexical" (provenance, as segments name their model).
    annotator: str = ""


class SpeakerStats(Struct, kw_only=True):
    speaker_id: str | None
    talk_time_s: float = 0.0
    talk_ratio: float = 0.0
    turn_count: int = 0
    longest_monologue_s: float = 0.0
    # Same as interruptions_initiated (kept for older readers).
    interruptions: int = 0
    mean_response_latency_s: float | None = None
    interruptions_initiated: int = 0
    interruptions_received: int = 0


class ReadyPayload(Struct, kw_only=True):
    config: SessionConfig
    audio_sample_rate: int = AUDIO_SAMPLE_RATE
    stages: list[str] = msgspec.field(default_factory=list)
    # Padding ingest keeps around VAD speech (stages that cut utterances need it).
    vad_speech_pad_ms: int | None = None


class EnrichmentPayload(Struct, kw_only=True):
    segment_id: str
    audio_state: dict[str, Any] = msgspec.field(default_factory=dict)
    extraction_status: dict[str, str] = msgspec.field(default_factory=dict)


class AnalyticsPayload(Struct, kw_only=True):
    speakers: list[SpeakerStats] = msgspec.field(default_factory=list)
    turn_count: int = 0
    turns_final: bool = False
    # Audio time (s) the snapshot reflects, and `{"turns_final": ...}` as the issue names it.
    audio_time_s: float = 0.0
    completeness: dict[str, bool] = msgspec.field(default_factory=dict)


class ErrorPayload(Struct, kw_only=True):
    """`code` is one of the codes documented in docs/PROTOCOL.md."""

    code: str
    message: str
    stage: str
    recoverable: bool = True
    detail: dict[str, Any] = msgspec.field(default_factory=dict)


class DonePayload(Struct, kw_only=True):
    """The session's last event: what every stage of the pipeline made of it."""

    duration_s: float = 0.0
    segments: int = 0
    stages: list[str] = msgspec.field(default_factory=list)
    model: str | None = None
    device: str | None = None
    reason: str = "stopped"
    # Events published before `done`, per event type.
    counts: dict[str, int] = msgspec.field(default_factory=dict)
    # Seconds each stage spent processing the session (its own measure: decoding,
    # decoding frames, computing features), per stage.
    processing_s: dict[str, float] = msgspec.field(default_factory=dict)
    # Each stage's contribution to this payload, as its spec's summary gave it.
    stage_summaries: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    # Stages of the pipeline that had not finished when `done` was published (their
    # workers were down past the done timeout).
    unfinished: list[str] = msgspec.field(default_factory=list)


# --- events (stream `ss:{sid}:events`) ----------------------------------------------------


class _Event(Struct, kw_only=True, tag_field="type"):
    # `seq` must stay the first field after the tag: the publish script splices the
    # assigned seq into the encoded JSON at that spot (see shared/publish.lua).
    seq: int = 0
    session_id: str
    id: str
    revision: int = 1
    schema_version: int = SCHEMA_VERSION
    emitted_at: float = 0.0
    stage: str = ""


class Ready(_Event, tag="ready"):
    payload: ReadyPayload


class PartialSegment(_Event, tag="partial_segment"):
    payload: Segment


class SegmentFinalized(_Event, tag="segment_finalized"):
    payload: Segment


class SegmentEnriched(_Event, tag="segment_enriched"):
    payload: EnrichmentPayload


class TurnUpdated(_Event, tag="turn_updated"):
    payload: Turn


class SemanticUpdate(_Event, tag="semantic_update"):
    payload: SemanticAnnotation


class AnalyticsSnapshot(_Event, tag="analytics_snapshot"):
    payload: AnalyticsPayload


class Error(_Event, tag="error"):
    payload: ErrorPayload


class Done(_Event, tag="done"):
    payload: DonePayload


Event = (
    Ready
    | PartialSegment
    | SegmentFinalized
    | SegmentEnriched
    | TurnUpdated
    | SemanticUpdate
    | AnalyticsSnapshot
    | Error
    | Done
)

# Event types after which nothing more may be published for the same id.
FINAL_TYPES = frozenset({"segment_finalized", "done", "ready", "error"})


def event_type(event: Event) -> str:
    """The wire tag (`type`) of an event."""
    return str(type(event).__struct_config__.tag)


def is_final(event: Event) -> bool:
    """Whether this event closes its entity id (nothing for the id may follow)."""
    if isinstance(event, TurnUpdated):
        return not event.payload.partial
    if isinstance(event, AnalyticsSnapshot):
        return event.payload.turns_final
    return event_type(event) in FINAL_TYPES


# --- Transcript v2 ------------------------------------------------------------------------


class StreamMeta(Struct, kw_only=True):
    session_id: str
    seq: int
    stream_version: int = STREAM_VERSION
    start_at: float | None = None
    features: dict[str, bool] = msgspec.field(default_factory=dict)


class TranscriptMeta(Struct, kw_only=True):
    stream: StreamMeta
    model: str | None = None
    device: str | None = None
    duration_s: float | None = None
    complete: bool = False
    errors: list[ErrorPayload] = msgspec.field(default_factory=list)


class Transcript(Struct, kw_only=True):
    """An offline-compatible v2 transcript; unfinished items carry `partial: true`."""

    schema_version: int = TRANSCRIPT_SCHEMA_VERSION
    text: str = ""
    segments: list[Segment] = msgspec.field(default_factory=list)
    speakers: list[SpeakerStats] = msgspec.field(default_factory=list)
    turns: list[Turn] = msgspec.field(default_factory=list)
    annotations: list[SemanticAnnotation] = msgspec.field(default_factory=list)
    meta: TranscriptMeta


_event_decoder = msgspec.json.Decoder(Event)
_encoder = msgspec.json.Encoder()


def encode(obj: object) -> bytes:
    """JSON-encode any schema Struct."""
    return _encoder.encode(obj)


def decode_event(data: bytes | str) -> Event:
    """Decode one event from its JSON."""
    return _event_decoder.decode(data)


SCHEMA_ROOTS: dict[str, Any] = {
    "event": Event,
    "producer_message": ProducerMessage,
    "audio_entry": AudioEntry,
    "session_config": SessionConfig,
    "transcript": Transcript,
}
