"""Whatever a producer sends, the ingest core never raises and keeps the log consistent."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.core import ErrorNotice, IngestSession
from services.ingest.settings import IngestSettings
from shared.schemas import AudioChunk, EndMark, Ready, VadMark
from tests.support.ingest import vad_model

_configs = st.sampled_from(
    [
        b'{"encoding": "pcm_s16le", "sample_rate": 16000}',
        b'{"encoding": "pcm_f32le", "sample_rate": 44100, "channels": 2}',
        b'{"encoding": "pcm_s16le", "sample_rate": 8000, "channels": 3, '
        b'"channels_as_speakers": true}',
        b'{"encoding": "opus", "sample_rate": 48000, "channels": 2}',
        b'{"encoding": "opus"',
        b'{"sample_rate": 99}',
    ]
)
_seq = st.one_of(
    st.integers(0, 12).map(lambda n: str(n).encode()),
    st.binary(max_size=4),
)
_message = st.one_of(
    st.fixed_dictionaries({b"type": st.just(b"start"), b"config": _configs}),
    st.fixed_dictionaries(
        {b"type": st.just(b"media"), b"seq": _seq, b"data": st.binary(max_size=1200)}
    ),
    st.fixed_dictionaries({b"type": st.just(b"media")}, optional={b"seq": _seq}),
    st.fixed_dictionaries({b"type": st.sampled_from([b"stop", b"", b"\xff", b"MEDIA"])}),
    st.dictionaries(st.binary(max_size=5), st.binary(max_size=5), max_size=3),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_message, max_size=30), batch=st.integers(1, 8))
def test_garbage_never_breaks_the_session(messages: list[dict[bytes, bytes]], batch: int) -> None:
    session = IngestSession("fuzz", IngestSettings(reorder_window=3), vad_model(), ["ingest"])
    entries = [(f"1-{i}", fields) for i, fields in enumerate(messages)]
    produced = []
    for i in range(0, len(entries), batch):
        out = session.handle_batch(entries[i : i + batch])
        assert all(isinstance(n, Ready | ErrorNotice) for n in out.notices)
        produced += out.entries
    positions: dict[int, int] = {}
    for entry in produced:
        if isinstance(entry, AudioChunk):
            assert entry.pos == positions.get(entry.channel, 0)
            positions[entry.channel] = entry.pos + len(entry.pcm) // 2
        elif isinstance(entry, VadMark):
            assert entry.pos <= positions.get(entry.channel, 0)
    ends = [e for e in produced if isinstance(e, EndMark)]
    assert len(ends) == (1 if session.ended else 0)
    if ends:
        assert produced[-1] == ends[0] and ends[0].pos == max(positions.values(), default=0)
