"""The ingest session state machine without Redis: audio out, errors out, checkpoint resume."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
import numpy as np

from services.ingest.core import (
    MAX_CHUNK_SAMPLES,
    MAX_ERRORS_PER_CODE,
    ErrorNotice,
    IngestSession,
    StepOutput,
)
from services.ingest.settings import IngestSettings
from shared.schemas import AudioChunk, AudioEntry, EndMark, Ready, SessionConfig
from tests.support.ingest import (
    STOP,
    load_fixture,
    media_fields,
    pcm_frames,
    start_fields,
    tone,
    track_audio,
    vad_marks,
    vad_model,
)

Entry = tuple[str, Mapping[bytes, bytes]]


def _entries(messages: Sequence[Mapping[str, bytes | str]], first: int = 1) -> list[Entry]:
    def raw(value: bytes | str) -> bytes:
        return value if isinstance(value, bytes) else value.encode()

    return [
        (f"1000-{i}", {k.encode(): raw(v) for k, v in fields.items()})
        for i, fields in enumerate(messages, start=first)
    ]


def _session(settings: IngestSettings | None = None) -> IngestSession:
    return IngestSession("s1", settings or IngestSettings(), vad_model(), ["ingest", "asr"])


def _codes(out: StepOutput) -> list[str]:
    return [n.code for n in out.notices if isinstance(n, ErrorNotice)]


def _speech_frames(seconds: float = 6.0) -> tuple[np.ndarray, list[bytes]]:
    audio, _ = load_fixture("conv_short")
    clip = audio[: int(seconds * 16000)]
    return clip, pcm_frames(clip, "pcm_s16le", 320)


def test_a_clean_session_writes_all_audio_marks_and_the_end() -> None:
    clip, frames = _speech_frames()
    session = _session()
    config = SessionConfig(language="en")
    messages = [start_fields(config)] + [media_fields(i, f) for i, f in enumerate(frames, 1)]
    out = session.handle_batch(_entries([*messages, STOP]))
    (ready,) = out.notices
    assert isinstance(ready, Ready)
    assert ready.payload.config == config and ready.payload.stages == ["ingest", "asr"]
    audio = track_audio(out.entries, 0)
    assert len(audio) == len(clip)
    np.testing.assert_allclose(audio, clip[:, 0], atol=1 / 32768)
    assert [s for s, _ in vad_marks(out.entries)].count("start") == 2
    assert out.entries[-1] == EndMark(pos=len(clip))
    chunks = [e for e in out.entries if isinstance(e, AudioChunk)]
    assert max(len(c.pcm) for c in chunks) == 2 * MAX_CHUNK_SAMPLES
    assert session.ended and out.frames_accepted == len(frames)
    summary = session.to_checkpoint()["summary"]
    # processing_s is the worker shell's measure; the pure core never reads a clock.
    assert summary == {"duration_s": round(len(clip) / 16000, 3), "processing_s": 0.0}


def test_every_mark_follows_the_chunk_holding_its_position() -> None:
    _, frames = _speech_frames()
    session = _session()
    session.handle_batch(_entries([start_fields(SessionConfig())]))
    written = 0
    marks = 0
    for i, frame in enumerate(frames, 1):
        out = session.handle_batch(_entries([media_fields(i, frame)], first=i + 1))
        for entry in out.entries:
            if isinstance(entry, AudioChunk):
                written = entry.pos + len(entry.pcm) // 2
            else:
                marks += 1
                assert entry.pos <= written
    # Two utterances: a start, a pause and an end each, at least; none checked is a bug.
    assert marks >= 6


def test_frames_out_of_order_are_written_in_seq_order() -> None:
    samples = tone(1.0, 16000)
    frames = pcm_frames(samples, "pcm_s16le", 1600)
    order = [2, 1, 3, 5, 4, 6, 7, 9, 8, 10]
    messages = [start_fields(SessionConfig())] + [media_fields(s, frames[s - 1]) for s in order]
    out = _session().handle_batch(_entries([*messages, STOP]))
    assert _codes(out) == []
    expected = np.frombuffer(b"".join(frames), "<i2") / 32768
    np.testing.assert_allclose(track_audio(out.entries, 0), expected)


def test_bad_inputs_yield_their_codes_and_the_session_goes_on() -> None:
    settings = IngestSettings(max_frame_bytes=4000, reorder_window=2)
    frame = b"\x00\x10" * 320
    messages: list[dict[str, bytes | str]] = [
        media_fields(1, frame),  # media_before_start
        start_fields(SessionConfig()),
        start_fields(SessionConfig(sample_rate=8000)),  # duplicate_start
        start_fields(b"{broken"),  # duplicate_start too: the session is already configured
        {"type": "pause"},  # malformed_message
        {"type": "media", "seq": "x", "data": frame},  # malformed_message
        media_fields(1, frame),
        media_fields(1, frame),  # duplicate_seq
        media_fields(2, b"\x00" * 5000),  # frame_too_large (uses seq 2)
        media_fields(3, frame[:-1]),  # bad_frame_length (uses seq 3)
        media_fields(6, frame),
        media_fields(7, frame),
        media_fields(8, frame),  # window of 2 overflows: seq_gap 4..5
        media_fields(10, frame),
        STOP,  # flush: seq_gap 9..9
    ]
    session = _session(settings)
    out = session.handle_batch(_entries(messages))
    assert _codes(out) == [
        "media_before_start",
        "duplicate_start",
        "duplicate_start",
        "malformed_message",
        "malformed_message",
        "duplicate_seq",
        "frame_too_large",
        "bad_frame_length",
        "seq_gap",
        "seq_gap",
    ]
    gaps = [n for n in out.notices if isinstance(n, ErrorNotice) and n.code == "seq_gap"]
    assert [(g.detail["missing_from"], g.detail["missing_to"]) for g in gaps] == [(4, 5), (9, 9)]
    assert all(n.recoverable for n in out.notices if isinstance(n, ErrorNotice))
    assert len(track_audio(out.entries, 0)) == 5 * 320  # seqs 1, 6, 7, 8, 10
    assert isinstance(out.entries[-1], EndMark) and session.ended


def test_fatal_errors_end_the_session_at_once() -> None:
    for messages, code in [
        ([start_fields(b"[]"), start_fields(SessionConfig())], "invalid_config"),
        ([start_fields(b'{"encoding": "aac"}')], "unsupported_encoding"),
        ([media_fields(1, b"\x00\x00"), STOP], "no_start"),
    ]:
        session = _session()
        out = session.handle_batch(_entries(messages))
        assert _codes(out)[-1] == code
        fatal = [n for n in out.notices if isinstance(n, ErrorNotice) and n.code == code]
        assert not fatal[0].recoverable
        assert out.entries == [EndMark(pos=0)] and session.ended
        assert not any(isinstance(n, Ready) for n in out.notices)


def test_no_start_timeout() -> None:
    session = _session()
    out = session.no_start_timeout(60.0)
    assert _codes(out) == ["no_start"] and out.entries == [EndMark(pos=0)]
    assert session.ended


def test_error_events_per_code_are_capped() -> None:
    frame = b"\x00\x00" * 10
    messages = [start_fields(SessionConfig()), media_fields(1, frame)]
    messages += [media_fields(1, frame) for _ in range(MAX_ERRORS_PER_CODE + 20)]
    session = _session()
    out = session.handle_batch(_entries(messages))
    assert _codes(out).count("duplicate_seq") == MAX_ERRORS_PER_CODE
    assert out.errors_suppressed == 20
    assert session.to_checkpoint()["errors"] == {"duplicate_seq": MAX_ERRORS_PER_CODE + 20}


def _all_entries(outs: Sequence[StepOutput]) -> list[AudioEntry]:
    return [e for out in outs for e in out.entries]


def test_resume_from_checkpoint_continues_the_log_exactly() -> None:
    clip, frames = _speech_frames(8.0)
    order = list(range(1, len(frames) + 1))
    # Frames 150..153 arrive late: at the cut, 154..156 wait in the reorder window.
    cut = order.index(150)
    order[cut : cut + 7] = [154, 155, 156, 150, 151, 152, 153]
    messages = [start_fields(SessionConfig())] + [media_fields(s, frames[s - 1]) for s in order]
    entries = _entries([*messages, STOP])
    split = cut + 4  # start + frames up to 156

    whole = _session().handle_batch(entries)

    first = _session()
    outs = [first.handle_batch(entries[:split])]
    state = msgspec.json.decode(msgspec.json.encode(first.to_checkpoint()))
    assert [b[0] for b in state["buffered"]] == [154, 155, 156]
    fields = dict(entries)
    refetched = {eid: fields[eid] for eid in first.buffered_entry_ids()}
    resumed = IngestSession.from_checkpoint(
        state, "s1", IngestSettings(), vad_model(), ["ingest", "asr"], refetched
    )
    assert resumed.last_entry_id == entries[split - 1][0]
    outs.append(resumed.handle_batch(entries[split:]))

    np.testing.assert_array_equal(track_audio(_all_entries(outs), 0), track_audio(whole.entries, 0))
    assert len(track_audio(whole.entries, 0)) == len(clip)
    marks = vad_marks(_all_entries(outs))
    assert [s for s, _ in marks].count("start") == [s for s, _ in vad_marks(whole.entries)].count(
        "start"
    )


def test_ended_checkpoint_resumes_as_ended() -> None:
    session = _session()
    session.handle_batch(_entries([start_fields(SessionConfig()), STOP]))
    state = msgspec.json.decode(msgspec.json.encode(session.to_checkpoint()))
    resumed = IngestSession.from_checkpoint(state, "s1", IngestSettings(), vad_model(), [], {})
    assert resumed.ended and resumed.config == SessionConfig()
