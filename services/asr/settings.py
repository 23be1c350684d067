"""Settings of the asr stage (STREAMSCRIBE_ASR_*): the model and the streaming policy."""

from __future__ import annotations

from dataclasses import dataclass

# The stage's name: its entry point, consumer group, checkpoint field and env prefix.
STAGE = "asr"


@dataclass(frozen=True, slots=True)
class AsrSettings:
    """Model and streaming policy of the asr stage."""

    model: str = "tiny.en"
    device: str = "auto"
    compute_type: str = "auto"
    # Threads of the encoder pass of final-quality decodes (finals, cap cuts, the decode
    # at a pause). 0: every core this process may use. The encoder, a 30 s window, is
    # most of a decode's cost; the beam search after it runs on one thread per decode.
    cpu_threads: int = 0
    # Final-quality decodes one worker runs at once (their encoder passes take turns).
    # 0: two where the process may use two or more cores, else one.
    decode_slots: int = 0
    # Partials run one at a time on their own model replica, whose threads get this
    # niceness (0-19), so a partial decoding when speech stops yields the CPU to the
    # decode that makes the final (docs/BENCHMARKS.md, "Partials in the background").
    partial_nice: int = 19
    # Beam for finals (and for the pause-time decode a final may reuse); partials use
    # partial_beam_size and stay greedy (they are many and are replaced anyway). Beam 5
    # with the audio context below gave the lowest WER of everything measured
    # (docs/BENCHMARKS.md, "Closing the WER gap").
    beam_size: int = 5
    partial_beam_size: int = 1
    partial_interval_s: float = 1.0
    max_utterance_s: float = 15.0
    max_new_tokens: int = 128
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    # A segment after the first with no_speech_prob above this is a hallucinated tail
    # ("Thank you.", "."). Measured on the fixtures' utterances: such tails 0.58-0.86,
    # first segments at most 0.12, a real second segment 0.10.
    tail_no_speech_threshold: float = 0.5
    # Committed text given to Whisper as its prompt (0: none). Live pipeline, errors on
    # conv_short/meeting_a/call_c/meeting_b: 200 chars 1/16/15/4, 60 chars 1/12/18/2,
    # none 4/7/18/4; 60 decodes faster than 200 (shorter prompt) and keeps the short
    # fixture right. Differences this small are near run-to-run noise.
    prompt_chars: int = 60
    # Final-quality decodes see the audio of the track's recent finals too: the window
    # [first word of the oldest final kept - 0.1 s, utterance end] spans at most this
    # many seconds, and those finals' text is forced as the decoder prefix, so Whisper
    # continues a conversation the way the whole-file pass does. 0: decode each
    # utterance alone. Must stay below Whisper's 30 s window.
    context_s: float = 20.0
    # Padding ingest puts around VAD speech, used when the session's `ready` does not
    # state it (events from before ingest published it).
    speech_pad_ms: int = 120
