"""Settings of the enrich stage's core: emotion model, pitch tracker, pauses, baselines."""

from __future__ import annotations

from dataclasses import dataclass

# The stage's name: its entry point, consumer group, checkpoint field and env prefix.
STAGE = "enrich"


@dataclass(frozen=True, slots=True)
class EnrichSettings:
    """Defaults only; the worker builds this from `STREAMSCRIBE_ENRICH_<FIELD>` variables."""

    # A local transformers checkpoint directory; empty = no model (acoustic arousal only).
    # Never a hub id: nothing is downloaded at run time.
    emotion_model: str = ""
    # "auto" = CUDA when present (fp16 there), else CPU; or any torch device string.
    emotion_device: str = "auto"
    # Segments per forward pass; 8 x ~5 s of 16 kHz audio fits a large wav2vec2 in ~2 GB.
    emotion_batch_size: int = 8
    # Shorter audio is zero-padded to this: wav2vec2's conv front end needs 400 samples for
    # one frame, and a few frames make mean pooling meaningful.
    emotion_min_seconds: float = 0.25

    # Pitch search range. 60 Hz is below low male speech (~85 Hz mean, dips to ~65 Hz
    # creaky); 500 Hz covers children and excited adult speech. Narrower = faster.
    pitch_min_hz: float = 60.0
    pitch_max_hz: float = 500.0
    # YIN: take the first trough of the cumulative-mean-normalized difference below this
    # (de Cheveigne & Kawahara 2002 use 0.1); it avoids picking sub-harmonics (octave errors).
    pitch_trough_threshold: float = 0.1
    # Voicing decision: a frame is voiced only if its best trough (its aperiodicity) is
    # below this. Speech voicing sits at 0.0-0.2; noise and fricatives stay near 1.0.
    voicing_threshold: float = 0.25
    # Energy gate: a frame is voiced only if it is louder than this absolute floor (dBFS)...
    voicing_floor_db: float = -55.0
    # ...and no more than this many dB below the segment's loud frames (95th percentile):
    # breath and room tails 30+ dB down are not voice even when periodic (hum).
    voicing_relative_db: float = 30.0
    # Total pitch movement over the voiced frames (linear fit, semitones) that counts as a
    # rising/falling contour: ~2 st is well above the glissando threshold of perception
    # ('t Hart 1990) and above declination noise within one short segment.
    contour_threshold_st: float = 2.0

    # A gap between words counts as a pause from 150 ms: shorter gaps are mostly stop
    # closures and Whisper timestamp jitter (tens of ms); pause studies use 150-250 ms.
    pause_min_ms: float = 150.0
    # ...and only if the gap is quiet: its median frame is this far below speech (the
    # segment's 90th-percentile frame). Word times are approximate; energy confirms them.
    pause_energy_drop_db: float = 20.0

    # Speaker-relative levels need this many earlier segments of the speaker.
    baseline_min_segments: int = 3
