"""The producer `finalize`: ingest closes open utterances at once, as a VAD end would."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from services.ingest.core import IngestSession, StepOutput
from services.ingest.settings import IngestSettings
from shared.schemas import AudioEntry, SessionConfig
from streamscribe.producer import finalize_fields
from tests.support.ingest import (
    STOP,
    load_fixture,
    media_fields,
    pcm_frames,
    start_fields,
    track_audio,
    vad_marks,
    vad_model,
)

Entry = tuple[str, Mapping[bytes, bytes]]
FRAME = 320  # 20 ms
# conv_short's first utterance is speech from 0.6 s to 2.887 s: 1.8 s is mid-word.
FINALIZE_AT_FRAME = 90  # 1.8 s


def _entries(messages: Sequence[Mapping[str, bytes | str]]) -> list[Entry]:
    def raw(value: bytes | str) -> bytes:
        return value if isinstance(value, bytes) else value.encode()

    return [
        (f"1000-{i}", {k.encode(): raw(v) for k, v in fields.items()})
        for i, fields in enumerate(messages, start=1)
    ]


def _session() -> IngestSession:
    return IngestSession("s1", IngestSettings(), vad_model(), ["ingest", "asr"])


def _messages(finalize_after: list[int], seconds: float = 6.0) -> list[Entry]:
    audio, _ = load_fixture("conv_short")
    frames = pcm_frames(audio[: int(seconds * 16000)], "pcm_s16le", FRAME)
    messages: list[Mapping[str, bytes | str]] = [start_fields(SessionConfig())]
    for seq, frame in enumerate(frames, 1):
        messages.append(media_fields(seq, frame))
        if seq in finalize_after:
            messages.append(finalize_fields())  # type: ignore[arg-type]
    return _entries([*messages, STOP])


def _all(outs: list[StepOutput]) -> list[AudioEntry]:
    return [e for out in outs for e in out.entries]


def test_finalize_mid_utterance_ends_it_at_the_audio_received() -> None:
    natural = vad_marks(_session().handle_batch(_messages([])).entries)
    out = _session().handle_batch(_messages([FINALIZE_AT_FRAME]))
    marks = vad_marks(out.entries)
    position = FINALIZE_AT_FRAME * FRAME
    first_end = next(pos for state, pos in natural if state == "end")
    assert first_end > position + 8000, "without finalize the utterance runs on past 2.3 s"
    # The VAD's own marks up to the finalize, then pause + end exactly where audio stopped.
    before = [m for m in natural if m[1] < position and m[0] != "end"]
    assert marks[: len(before)] == before
    assert marks[len(before) : len(before) + 2] == [("pause", position), ("end", position)]
    # The speaker goes on: a new utterance opens no earlier than the finalize position.
    rest = marks[len(before) + 2 :]
    assert rest[0][0] == "start" and rest[0][1] >= position
    assert [s for s, _ in rest].count("end") == [s for s, _ in natural].count("end")
    # Audio is untouched by it.
    assert len(track_audio(out.entries, 0)) == 6 * 16000


def test_finalize_in_silence_or_before_start_does_nothing() -> None:
    session = _session()
    out = session.handle_batch(_entries([finalize_fields(), start_fields(SessionConfig())]))  # type: ignore[list-item]
    assert out.entries == [] and [type(n).__name__ for n in out.notices] == ["Ready"]
    # 0.2 s is silence before the first word: nothing is open, nothing is marked.
    natural = vad_marks(_session().handle_batch(_messages([])).entries)
    assert vad_marks(_session().handle_batch(_messages([10])).entries) == natural


def test_marks_do_not_depend_on_batches_or_a_takeover() -> None:
    entries = _messages([FINALIZE_AT_FRAME, 200])
    whole = _session().handle_batch(entries)
    finalize_index = next(i for i, (_, f) in enumerate(entries) if f[b"type"] == b"finalize")
    for cut in (finalize_index, finalize_index + 1, finalize_index + 37):
        first = _session()
        outs = [first.handle_batch(entries[:cut])]
        # The worker checkpoints after each batch; a takeover resumes from the JSON.
        state = msgspec.json.decode(msgspec.json.encode(first.to_checkpoint()))
        resumed = IngestSession.from_checkpoint(
            state, "s1", IngestSettings(), vad_model(), ["ingest", "asr"], {}
        )
        outs.append(resumed.handle_batch(entries[cut:]))
        assert vad_marks(_all(outs)) == vad_marks(whole.entries), f"cut at {cut}"
        assert len(track_audio(_all(outs), 0)) == len(track_audio(whole.entries, 0))
