"""Settings of the ingest stage (STREAMSCRIBE_INGEST_*): protocol limits and VAD thresholds."""

from __future__ import annotations

from dataclasses import dataclass

from shared.protocol import Limits

_DEFAULT_LIMITS = Limits()


# The stage's name: its entry point, consumer group, checkpoint field and env prefix.
STAGE = "ingest"


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """Limits and VAD thresholds of the ingest stage."""

    max_frame_bytes: int = _DEFAULT_LIMITS.max_frame_bytes
    min_sample_rate: int = _DEFAULT_LIMITS.min_sample_rate
    max_sample_rate: int = _DEFAULT_LIMITS.max_sample_rate
    max_channels: int = _DEFAULT_LIMITS.max_channels
    reorder_window: int = 32
    vad_threshold: float = 0.5
    # Silence that closes an utterance. 300 ms: conversations pause 0.3-1.5 s between
    # turns, and at 400 ms turns 0.3-0.4 s apart merged into one segment whose first
    # half then waited seconds for its final (bench meeting_a: max 5.8 s -> 1.9 s).
    vad_min_silence_ms: int = 300
    vad_speech_pad_ms: int = 120
    vad_min_speech_ms: int = 200
    # A registered session whose start has not come after this long ends (`no_start`).
    no_start_timeout_s: float = 60.0
    # A started session whose producer sent nothing for this long ends as if stopped
    # (`producer_timeout`), so a vanished producer cannot hold workers forever. 0: never.
    producer_idle_timeout_s: float = 300.0

    @property
    def limits(self) -> Limits:
        """The protocol limits these settings enforce."""
        return Limits(
            max_frame_bytes=self.max_frame_bytes,
            min_sample_rate=self.min_sample_rate,
            max_sample_rate=self.max_sample_rate,
            max_channels=self.max_channels,
        )
