"""Schemas: the checked-in JSON Schema matches the Structs; events round-trip on the wire."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from shared.bus import split_for_seq
from shared.schema_export import render_schemas
from shared.schemas import (
    Done,
    DonePayload,
    Error,
    ErrorPayload,
    Event,
    PartialSegment,
    Segment,
    SegmentFinalized,
    Turn,
    TurnUpdated,
    decode_event,
    is_final,
)

SCHEMAS = Path(__file__).parents[2] / "schemas"


def test_checked_in_json_schema_matches_the_structs() -> None:
    rendered = render_schemas()
    on_disk = {p.name: p.read_text() for p in SCHEMAS.glob("*.schema.json")}
    assert set(on_disk) == set(rendered), "run `make schemas`"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"{name} drifted from shared/schemas.py: run `make schemas`"


def test_event_json_splits_at_the_top_level_seq_only() -> None:
    seg = Segment(id="a", start=0, end=1, text='say "seq":0, please')
    head, tail = split_for_seq(PartialSegment(session_id="s", id="a", payload=seg))
    event = decode_event(head + b"7" + tail)
    assert isinstance(event, PartialSegment)
    assert event.seq == 7 and event.payload.text == 'say "seq":0, please'


def _seg(final: bool) -> Segment:
    return Segment(id="a", start=0, end=1, text="x", partial=not final)


@pytest.mark.parametrize(
    ("event", "final"),
    [
        (PartialSegment(session_id="s", id="a", payload=_seg(False)), False),
        (SegmentFinalized(session_id="s", id="a", payload=_seg(True)), True),
        (
            TurnUpdated(
                session_id="s",
                id="t",
                payload=Turn(id="t", speaker_id=None, start=0, end=1, text=""),
            ),
            False,
        ),
        (Done(session_id="s", id="done", payload=DonePayload()), True),
        (
            Error(
                session_id="s", id="e", payload=ErrorPayload(code="c", message="m", stage="ingest")
            ),
            True,
        ),
    ],
)
def test_which_events_close_their_id(event: Event, final: bool) -> None:
    assert is_final(event) is final
    assert decode_event(msgspec.json.encode(event)) == event


def test_unknown_fields_from_newer_writers_are_ignored() -> None:
    raw = msgspec.json.encode(Done(session_id="s", id="done", payload=DonePayload()))
    newer = raw[:-1] + b',"added_later":1}'
    assert decode_event(newer).id == "done"
