"""The ingest stage in the real worker loop against real Redis: audio log, events, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from services.ingest.decode import AudioNormalizer
from services.ingest.worker import IngestHandler
from shared import keys
from shared.bus import Bus
from shared.schemas import Done, Error, Ready, SessionConfig
from shared.settings import Settings
from shared.worker import SessionLease
from tests.conftest import fixture_reference
from tests.support.ingest import (
    STOP,
    audio_log,
    end_marks,
    ingest_settings,
    load_fixture,
    media_fields,
    opus_packets,
    pcm_frames,
    push,
    resample_to,
    running_worker,
    session_messages,
    start_fields,
    tone,
    track_audio,
    vad_marks,
    vad_model,
    wait_done,
)

VAD_WINDOW = 512


def _errors(events: Sequence[object]) -> list[Error]:
    return [e for e in events if isinstance(e, Error)]


async def test_session_is_normalized_marked_and_finished(bus: Bus, settings: Settings) -> None:
    settings = ingest_settings(settings)
    audio, rate = load_fixture("conv_short")
    frames = pcm_frames(audio, "pcm_s16le", rate // 50)
    config = SessionConfig(sample_rate=rate, language="en")
    async with running_worker(bus, settings):
        await push(bus.redis, "conv", session_messages(config, frames), register=True)
        events = await wait_done(bus.redis, "conv")

    ready = [e for e in events if isinstance(e, Ready)]
    assert len(ready) == 1 and ready[0].stage == "ingest"
    assert ready[0].payload.config == config and ready[0].payload.stages == ["ingest"]
    assert _errors(events) == []
    done = events[-1]
    assert isinstance(done, Done)
    assert done.payload.duration_s == pytest.approx(len(audio) / 16000, abs=0.01)

    entries = await audio_log(bus.redis, "conv")
    track = track_audio(entries, 0)
    np.testing.assert_allclose(track, audio[:, 0], atol=1 / 32768)
    utterances = fixture_reference("conv_short")["utterances"]
    starts = [pos for state, pos in vad_marks(entries) if state == "start"]
    assert len(starts) == len(utterances)  # type: ignore[arg-type]
    assert end_marks(entries) == [entries[-1]] and entries[-1].pos == len(track)


async def test_resampled_and_opus_sessions_keep_their_duration(
    bus: Bus, settings: Settings
) -> None:
    settings = ingest_settings(settings)
    audio, rate = load_fixture("call_stereo")
    audio = audio[: rate * 8]
    seconds = len(audio) / rate
    at_44k = resample_to(audio, rate, 44100)
    f32_config = SessionConfig(sample_rate=44100, encoding="pcm_f32le", channels=2)
    at_48k = resample_to(audio, rate, 48000)
    opus_config = SessionConfig(
        sample_rate=48000, encoding="opus", channels=2, channels_as_speakers=True
    )
    async with running_worker(bus, settings):
        await push(
            bus.redis,
            "f32",
            session_messages(f32_config, pcm_frames(at_44k, "pcm_f32le", 441 * 2)),
            register=True,
        )
        await push(
            bus.redis, "opus", session_messages(opus_config, opus_packets(at_48k)), register=True
        )
        for sid in ("f32", "opus"):
            assert _errors(await wait_done(bus.redis, sid)) == []

    downmix = track_audio(await audio_log(bus.redis, "f32"), 0)
    assert abs(len(downmix) - seconds * 16000) <= VAD_WINDOW
    opus_entries = await audio_log(bus.redis, "opus")
    left, right = track_audio(opus_entries, 0), track_audio(opus_entries, 1)
    assert len(left) == len(right)
    # Opus codes whole 20 ms packets: the tail of the last one may be missing.
    assert abs(len(left) - seconds * 16000) <= VAD_WINDOW + 320
    for channel in (0, 1):
        spoken = [
            u
            for u in fixture_reference("call_stereo")["utterances"]  # type: ignore[attr-defined]
            if u["channel"] == channel and u["end_s"] < seconds - 0.5
        ]
        starts = [pos for state, pos in vad_marks(opus_entries, channel) if state == "start"]
        assert len(starts) == len(spoken)


async def test_every_bad_input_yields_its_error_while_a_good_session_finishes(
    bus: Bus, settings: Settings
) -> None:
    settings = ingest_settings(settings, bus__max_sessions_per_worker=16)
    settings = settings.with_overrides(ingest__max_frame_bytes=10_000, ingest__reorder_window=3)
    frame = pcm_frames(tone(0.02, 16000), "pcm_s16le", 320)[0]
    opus = opus_packets(tone(0.2, 48000))
    sessions: dict[str, tuple[list[dict[str, bytes | str]], list[str]]] = {
        "bad-json": ([start_fields(b"{oops")], ["invalid_config"]),
        "bad-rate": ([start_fields(SessionConfig(sample_rate=4000))], ["invalid_config"]),
        "bad-channels": ([start_fields(SessionConfig(channels=9))], ["invalid_config"]),
        "bad-encoding": ([start_fields(b'{"encoding": "mp3"}')], ["unsupported_encoding"]),
        "stop-first": ([media_fields(1, frame), STOP], ["media_before_start", "no_start"]),
        "silent": ([], ["no_start"]),
        "opus-garbage": (
            [
                start_fields(SessionConfig(encoding="opus", sample_rate=48000)),
                media_fields(1, opus[0]),
                media_fields(2, b"\xff" * 2000),
                *(media_fields(i, p) for i, p in enumerate(opus[1:], start=3)),
                STOP,
            ],
            ["decode_failed"],
        ),
        "messy": (
            [
                media_fields(1, frame),
                start_fields(SessionConfig()),
                start_fields(SessionConfig()),
                {"type": "bogus"},
                {"type": "media", "data": frame},
                {"type": "media", "seq": "two", "data": frame},
                {"type": "media", "seq": "1"},
                media_fields(1, frame),
                media_fields(1, frame),
                media_fields(2, b"\x00" * 20_000),
                media_fields(3, frame[:-1]),
                *(media_fields(i, frame) for i in range(6, 11)),
                STOP,
            ],
            [
                "media_before_start",
                "duplicate_start",
                "malformed_message",
                "malformed_message",
                "malformed_message",
                "malformed_message",
                "duplicate_seq",
                "frame_too_large",
                "bad_frame_length",
                "seq_gap",
            ],
        ),
    }
    good_audio, _ = load_fixture("conv_short")
    good_audio = good_audio[: 16000 * 4]
    handler = IngestHandler(settings, no_start_timeout_s=1.0, model=vad_model())
    async with running_worker(bus, settings, handler):
        for sid, (messages, _codes) in sessions.items():
            await push(bus.redis, sid, messages, register=True)
        await push(
            bus.redis,
            "good",
            session_messages(SessionConfig(), pcm_frames(good_audio, "pcm_s16le", 320)),
            register=True,
        )
        results = await asyncio.gather(*(wait_done(bus.redis, sid) for sid in [*sessions, "good"]))

    for (sid, (_messages, codes)), events in zip(sessions.items(), results, strict=False):
        errors = _errors(events)
        assert [e.payload.code for e in errors] == codes, sid
        fatal = {"invalid_config", "unsupported_encoding", "no_start"}
        assert all(e.payload.recoverable == (e.payload.code not in fatal) for e in errors)
        entries = await audio_log(bus.redis, sid)
        assert len(end_marks(entries)) == 1, sid
    messy = _errors(results[list(sessions).index("messy")])
    (gap,) = [e for e in messy if e.payload.code == "seq_gap"]
    assert gap.id == "error:ingest:seq_gap:4-5"
    assert (gap.payload.detail["missing_from"], gap.payload.detail["missing_to"]) == (4, 5)
    assert _errors(results[-1]) == []
    good = track_audio(await audio_log(bus.redis, "good"), 0)
    assert len(good) == len(good_audio)


async def test_a_50_mb_frame_is_rejected_without_harm(bus: Bus, settings: Settings) -> None:
    settings = ingest_settings(settings)
    frame = pcm_frames(tone(0.02, 16000), "pcm_s16le", 320)[0]
    huge = b"\x00" * (50 * 1024 * 1024)
    async with running_worker(bus, settings) as worker:
        messages = [start_fields(SessionConfig()), media_fields(1, huge), media_fields(2, frame)]
        await push(bus.redis, "huge", [*messages, STOP], register=True)
        events = await wait_done(bus.redis, "huge")
        assert await worker.ready()

    (error,) = _errors(events)
    assert error.payload.code == "frame_too_large"
    assert error.payload.detail["size"] == len(huge)
    assert len(track_audio(await audio_log(bus.redis, "huge"), 0)) == 320


async def _checkpoint(bus: Bus, sid: str) -> dict[str, object]:
    return await bus.load_checkpoint(sid, "ingest") or {}


async def test_a_new_worker_resumes_exactly_where_the_log_ends(
    bus: Bus, settings: Settings
) -> None:
    settings = ingest_settings(settings)
    audio, _ = load_fixture("conv_short")
    audio = audio[: 16000 * 6]
    frames = pcm_frames(audio, "pcm_s16le", 320)
    half = len(frames) // 2
    first = [start_fields(SessionConfig())]
    # Frame `half` is late: the frames after it wait in the reorder window at the switch.
    first += [media_fields(s, frames[s - 1]) for s in range(1, half)]
    first += [media_fields(s, frames[s - 1]) for s in range(half + 1, half + 4)]
    rest = [media_fields(s, frames[s - 1]) for s in [half, *range(half + 4, len(frames) + 1)]]

    async with running_worker(bus, settings.with_overrides(worker_name="first")):
        await push(bus.redis, "resume", first, register=True)
        newest: Any = await bus.redis.xrevrange(keys.inbox("resume"), count=1)
        last_id = newest[0][0].decode()
        for _ in range(200):
            if (await _checkpoint(bus, "resume")).get("last_id") == last_id:
                break
            await asyncio.sleep(0.05)
    state = await _checkpoint(bus, "resume")
    assert state["last_id"] == last_id
    assert [b[0] for b in state["buffered"]] == [half + 1, half + 2, half + 3]  # type: ignore[attr-defined]

    async with running_worker(bus, settings.with_overrides(worker_name="second")):
        await push(bus.redis, "resume", [*rest, STOP])
        events = await wait_done(bus.redis, "resume")

    assert _errors(events) == []
    assert len([e for e in events if isinstance(e, Ready)]) == 1
    entries = await audio_log(bus.redis, "resume")
    np.testing.assert_allclose(track_audio(entries, 0), audio[:, 0], atol=1 / 32768)
    assert len(end_marks(entries)) == 1


async def test_two_owners_at_once_still_write_one_consistent_log(
    bus: Bus, settings: Settings
) -> None:
    audio, _ = load_fixture("conv_short")
    audio = audio[: 16000 * 6]
    frames = pcm_frames(audio, "pcm_s16le", 320)
    await push(bus.redis, "twice", session_messages(SessionConfig(), frames))
    # A zombie and the new owner both work the session (a lease expired under load).
    leases = [
        SessionLease(session_id="twice", entry_id=b"1-1", stage="ingest", bus=bus) for _ in range(2)
    ]
    handlers = [IngestHandler(settings, model=vad_model()) for _ in leases]
    await asyncio.gather(*(h.run_session(lease) for h, lease in zip(handlers, leases, strict=True)))

    entries = await audio_log(bus.redis, "twice")
    np.testing.assert_allclose(track_audio(entries, 0), audio[:, 0], atol=1 / 32768)
    assert len(end_marks(entries)) == 1


async def test_a_bug_on_one_input_ends_that_session_with_an_end_mark(
    bus: Bus, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ingest_settings(settings)
    real_decode = AudioNormalizer.decode

    def decode(self: AudioNormalizer, data: bytes) -> dict[int, np.ndarray]:
        if data.startswith(b"BOOM"):
            raise RuntimeError("poison frame")
        return real_decode(self, data)

    monkeypatch.setattr(AudioNormalizer, "decode", decode)
    frames = pcm_frames(tone(1.0, 16000), "pcm_s16le", 320)
    poisoned = [*frames[:20], b"BOOM" + frames[20][4:], *frames[21:]]
    async with running_worker(bus, settings):
        await push(bus.redis, "poison", session_messages(SessionConfig(), poisoned), register=True)
        await push(bus.redis, "fine", session_messages(SessionConfig(), frames), register=True)
        poison_events = await wait_done(bus.redis, "poison")
        fine_events = await wait_done(bus.redis, "fine")

    (error,) = _errors(poison_events)
    assert (error.payload.code, error.payload.recoverable) == ("internal", False)
    entries = await audio_log(bus.redis, "poison")
    (end,) = end_marks(entries)
    assert end.pos == len(track_audio(entries, 0))
    assert _errors(fine_events) == []
    assert len(track_audio(await audio_log(bus.redis, "fine"), 0)) == 16000


async def test_a_producer_that_goes_quiet_without_stop_is_timed_out(
    bus: Bus, settings: Settings
) -> None:
    settings = ingest_settings(settings, ingest__producer_idle_timeout_s=1.0)
    audio, _ = load_fixture("conv_short")
    frames = pcm_frames(audio[: 16000 * 2], "pcm_s16le", 320)
    handler = IngestHandler(settings, model=vad_model())
    async with running_worker(bus, settings, handler):
        messages = session_messages(SessionConfig(), frames)[:-1]  # no stop
        await push(bus.redis, "quiet", messages, register=True)
        events = await wait_done(bus.redis, "quiet")
    (error,) = _errors(events)
    assert (error.payload.code, error.payload.recoverable) == ("producer_timeout", False)
    entries = await audio_log(bus.redis, "quiet")
    assert len(end_marks(entries)) == 1
    assert len(track_audio(entries, 0)) == len(frames) * 320, "everything sent is kept"
    assert await bus.redis.xlen(keys.inbox("quiet")) <= 1, "consumed producer frames trimmed"


async def test_producer_chosen_entry_ids_are_not_read_as_idle_time(
    bus: Bus, settings: Settings
) -> None:
    """XADD with explicit ids (1-0, 2-0, ...) and a pause: the ids' "time" is 1970, which
    read alone made the session time out at once and drop the rest of its audio."""
    settings = ingest_settings(settings, ingest__producer_idle_timeout_s=60.0)
    audio, _ = load_fixture("conv_short")
    frames = pcm_frames(audio[: 16000 * 2], "pcm_s16le", 320)
    messages = session_messages(SessionConfig(), frames)
    inbox = keys.inbox("own-ids")
    handler = IngestHandler(settings, model=vad_model())
    async with running_worker(bus, settings, handler):
        await bus.redis.xadd(keys.registry(), {"session_id": "own-ids"})
        half = len(messages) // 2
        for n, fields in enumerate(messages[:half], 1):
            await bus.redis.xadd(inbox, dict(fields), id=f"{n}-0")  # type: ignore[arg-type]
        await asyncio.sleep(2.0)  # the producer pauses: well under the idle limit
        for n, fields in enumerate(messages[half:], half + 1):
            await bus.redis.xadd(inbox, dict(fields), id=f"{n}-0")  # type: ignore[arg-type]
        events = await wait_done(bus.redis, "own-ids")
    assert _errors(events) == []
    assert len(track_audio(await audio_log(bus.redis, "own-ids"), 0)) == len(frames) * 320
