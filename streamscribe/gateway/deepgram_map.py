"""Deepgram's streaming protocol on streamscribe: query options in, events to Deepgram messages.

Pure: no socket, no Redis. `parse_options` turns `/v1/listen`'s query into a SessionConfig
(or a ValueError a client sees as HTTP 400); `DeepgramMapper` turns the session's events,
in seq order, into the `Results`, `SpeechStarted`, `UtteranceEnd` and `Metadata` messages a
Deepgram client expects (docs/PROTOCOL.md, "Deepgram-compatible streaming").
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.schemas import AUDIO_SAMPLE_RATE, Features, SessionConfig

# Deepgram encodings streamscribe takes. Its `opus`/`ogg-opus` is an Ogg stream cut at
# arbitrary bytes, while ingest takes one raw Opus packet per frame, so it is refused.
ENCODINGS = {"linear16": "pcm_s16le"}
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_SEGMENT_ID = re.compile(r"^seg-(\d+)-(\d+)$")
_WORD_EDGE = re.compile(r"^[^\w']+|[^\w']+$")


@dataclass(frozen=True, slots=True)
class DeepgramOptions:
    """What a `/v1/listen` query asks for, as streamscribe understands it."""

    sample_rate: int
    channels: int = 1
    interim_results: bool = False
    utterance_end_ms: int | None = None
    vad_events: bool = False
    multichannel: bool = False
    diarize: bool = False
    language: str | None = None

    @property
    def sample_bytes(self) -> int:
        """Bytes of one sample frame (all channels) of linear16."""
        return 2 * self.channels

    def session_config(self) -> SessionConfig:
        return SessionConfig(
            sample_rate=self.sample_rate,
            encoding="pcm_s16le",
            channels=self.channels,
            channels_as_speakers=self.multichannel,
            language=self.language,
            features=Features(diarization=self.diarize) if self.diarize else Features(),
        )


def _flag(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, got {raw[:20]!r}")


def _int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw[:20]!r}") from None


def parse_options(query: Mapping[str, str]) -> DeepgramOptions:
    """The options of a `/v1/listen` query; ValueError names what cannot work."""
    encoding = query.get("encoding")
    if encoding is None:
        raise ValueError(
            "streamscribe takes raw audio only: pass encoding=linear16 and sample_rate "
            "(containerized audio such as WAV or WebM is not detected)"
        )
    if encoding not in ENCODINGS:
        raise ValueError(
            f"encoding {encoding[:20]!r} is not supported; use linear16 (16-bit little-endian PCM)"
        )
    sample_rate = _int(query, "sample_rate")
    if sample_rate is None:
        raise ValueError("sample_rate is required with encoding=linear16")
    channels = _int(query, "channels") or 1
    # Deepgram's region variants (en-US, en-GB) are one language to Whisper; `multi` is
    # its code-switching model: detect the language.
    raw_language = query.get("language") or "multi"
    language = None if raw_language == "multi" else raw_language.split("-", 1)[0].lower()
    utterance_end = _int(query, "utterance_end_ms")
    return DeepgramOptions(
        sample_rate=sample_rate,
        channels=channels,
        interim_results=_flag(query, "interim_results"),
        utterance_end_ms=utterance_end if utterance_end and utterance_end > 0 else None,
        vad_events=_flag(query, "vad_events"),
        multichannel=_flag(query, "multichannel"),
        diarize=_flag(query, "diarize"),
        language=language,
    )


def segment_start_sample(segment_id: str) -> tuple[int, int] | None:
    """(channel, start sample) of a `seg-<channel>-<start sample>` id."""
    match = _SEGMENT_ID.match(segment_id)
    return (int(match[1]), int(match[2])) if match else None


@dataclass
class DeepgramMapper:
    """One connection's events -> Deepgram messages, applied in seq order.

    `Finalize` is matched by audio position: `finalize_requested(position)` records where
    the client's audio stood (16 kHz samples); ingest closes each open utterance exactly
    there, so the first final on a track that started before that position, with no later
    segment known to start before it, is the utterance it closed (`from_finalize: true`).
    A final that starts at or after the position means nothing was open on that track.
    """

    options: DeepgramOptions
    request_id: str
    model_name: str = "streamscribe"
    _finalize_at: dict[int, int] = field(default_factory=dict)
    _starts: dict[int, set[int]] = field(default_factory=dict)
    _announced: set[str] = field(default_factory=set)
    _created: float = field(default_factory=time.time)

    @property
    def tracks(self) -> list[int]:
        return list(range(self.options.channels)) if self.options.multichannel else [0]

    def finalize_requested(self, position: int) -> None:
        for track in self.tracks:
            self._finalize_at[track] = position

    def messages(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The Deepgram messages for one event (often none)."""
        kind = event.get("type")
        payload = event.get("payload") or {}
        if kind == "partial_segment":
            return self._partial(payload)
        if kind == "segment_finalized":
            return self._final(payload)
        if kind == "error" and not payload.get("recoverable", True):
            return [
                {
                    "type": "Error",
                    "variant": str(payload.get("code", "error")),
                    "description": str(payload.get("message", "")),
                    "code": str(payload.get("code", "")),
                    "message": str(payload.get("message", "")),
                }
            ]
        if kind == "done":
            return [self.metadata(payload)]
        return []

    def _note(self, segment: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Remember the segment's start; SpeechStarted the first time it is seen."""
        position = segment_start_sample(str(segment.get("id", "")))
        channel = self._channel(segment)
        if position is not None:
            self._starts.setdefault(position[0], set()).add(position[1])
        sid = str(segment.get("id"))
        if sid in self._announced:
            return []
        self._announced.add(sid)
        if not self.options.vad_events:
            return []
        return [
            {
                "type": "SpeechStarted",
                "channel": [channel, self._channel_count],
                "timestamp": round(float(segment.get("start", 0.0)), 3),
            }
        ]

    def _partial(self, segment: Mapping[str, Any]) -> list[dict[str, Any]]:
        out = self._note(segment)
        if self.options.interim_results:
            out.append(self._results(segment, is_final=False, speech_final=False))
        return out

    def _final(self, segment: Mapping[str, Any]) -> list[dict[str, Any]]:
        out = self._note(segment)
        from_finalize = self._closed_by_finalize(segment)
        provenance = segment.get("asr") or {}
        if provenance.get("model"):
            self.model_name = str(provenance["model"])
        out.append(
            self._results(
                segment,
                is_final=True,
                speech_final=not from_finalize,
                from_finalize=from_finalize,
            )
        )
        words = segment.get("words") or []
        if self.options.utterance_end_ms is not None and words:
            out.append(
                {
                    "type": "UtteranceEnd",
                    "channel": [self._channel(segment), self._channel_count],
                    "last_word_end": round(float(words[-1]["end"]), 3),
                }
            )
        return out

    def _closed_by_finalize(self, segment: Mapping[str, Any]) -> bool:
        position = segment_start_sample(str(segment.get("id", "")))
        if position is None:
            return False
        track, start = position
        at = self._finalize_at.get(track)
        if at is None:
            return False
        if start >= at:
            del self._finalize_at[track]  # nothing was open on this track at Finalize
            return False
        if any(start < other < at for other in self._starts.get(track, ())):
            return False  # an earlier utterance, closed by the VAD before Finalize
        del self._finalize_at[track]
        return True

    @property
    def _channel_count(self) -> int:
        return self.options.channels if self.options.multichannel else 1

    def _channel(self, segment: Mapping[str, Any]) -> int:
        return int(segment.get("channel") or 0) if self.options.multichannel else 0

    def _results(
        self,
        segment: Mapping[str, Any],
        *,
        is_final: bool,
        speech_final: bool,
        from_finalize: bool = False,
    ) -> dict[str, Any]:
        start = float(segment.get("start", 0.0))
        end = float(segment.get("end", start))
        words = [self._word(w, segment) for w in segment.get("words") or []]
        confidence = sum(w["confidence"] for w in words) / len(words) if words else 0.0
        return {
            "type": "Results",
            "channel_index": [self._channel(segment), self._channel_count],
            "duration": round(max(0.0, end - start), 3),
            "start": round(start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": str(segment.get("text", "")).strip(),
                        "confidence": round(confidence, 4),
                        "words": words,
                    }
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": {
                    "name": self.model_name,
                    "version": "streamscribe",
                    "arch": "whisper",
                },
                "model_uuid": self.model_name,
            },
        }

    def _word(self, word: Mapping[str, Any], segment: Mapping[str, Any]) -> dict[str, Any]:
        punctuated = str(word.get("word", "")).strip()
        out: dict[str, Any] = {
            "word": _WORD_EDGE.sub("", punctuated).lower() or punctuated.lower(),
            "start": round(float(word.get("start", 0.0)), 3),
            "end": round(float(word.get("end", 0.0)), 3),
            "confidence": round(float(word.get("probability", 0.0)), 4),
            "punctuated_word": punctuated,
        }
        speaker = _speaker_number(segment.get("speaker_id"))
        if speaker is not None and (self.options.diarize or self.options.multichannel):
            out["speaker"] = speaker
        return out

    def metadata(self, done: Mapping[str, Any]) -> dict[str, Any]:
        """The `Metadata` message sent when the stream closes (from the `done` payload)."""
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": "",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self._created)),
            "duration": round(float(done.get("duration_s", 0.0)), 3),
            "channels": self.options.channels,
            "models": [self.model_name],
            "model_info": {
                self.model_name: {
                    "name": self.model_name,
                    "version": "streamscribe",
                    "arch": "whisper",
                }
            },
        }


def position_16k(samples: int, sample_rate: int) -> int:
    """A position in the client's samples as a position in the 16 kHz audio log."""
    return round(samples * AUDIO_SAMPLE_RATE / sample_rate)


def _speaker_number(speaker_id: object) -> int | None:
    if isinstance(speaker_id, str):
        digits = speaker_id.rsplit("_", 1)[-1]
        if digits.isdigit():
            return int(digits)
    return None
