"""The asr streaming policy without a model: hypotheses are given, decisions are checked."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from services.asr.agreement import LocalAgreement
from services.asr.hypothesis import Hypothesis, cut_loops, words_after_prefix
from services.asr.scheduler import FINAL_PRIORITY, PARTIAL_PRIORITY, DecodeScheduler
from services.asr.tracker import SR, SessionTracker
from shared.audio_log import float_to_pcm
from shared.schemas import AsrProvenance, AudioChunk, EndMark, VadMark, Word

PROV = AsrProvenance(model="tiny.en", device="cpu", compute_type="int8", beam_size=1)


def words(text: str, start: float = 0.0, step: float = 0.3) -> list[Word]:
    return [
        Word(
            word=" " + w, start=start + i * step, end=start + (i + 1) * step - 0.05, probability=0.9
        )
        for i, w in enumerate(text.split())
    ]


def tracker(**kw) -> SessionTracker:
    opts = dict(
        partial_interval_s=1.0,
        max_utterance_s=15.0,
        prompt_chars=200,
        channels_as_speakers=False,
        provenance=PROV,
    )
    opts.update(kw)
    return SessionTracker("s", **opts)


class Feeder:
    def __init__(self, t: SessionTracker) -> None:
        self.t, self.n, self.pos = t, 0, 0

    def audio(self, seconds: float, channel: int = 0) -> None:
        samples = np.zeros(int(seconds * SR), dtype=np.float32)
        self.n += 1
        self.t.feed(
            f"{self.n}-0", AudioChunk(channel=channel, pos=self.pos, pcm=float_to_pcm(samples))
        )
        self.pos += len(samples)

    def vad(self, state: str, at: float | None = None, channel: int = 0) -> None:
        self.n += 1
        pos = self.pos if at is None else int(at * SR)
        self.t.feed(f"{self.n}-0", VadMark(channel=channel, pos=pos, state=state))

    def end(self) -> None:
        self.n += 1
        self.t.feed(f"{self.n}-0", EndMark(pos=self.pos))


def test_partials_every_interval_then_final_from_covering_hypothesis() -> None:
    t = tracker()
    f = Feeder(t)
    f.audio(0.5)
    f.vad("start", at=0.4)
    f.audio(0.5)
    assert t.pending() is None, "less than a second of speech: no decode yet"
    f.audio(0.6)
    assert t.pending() == "partial"
    req = t.next_request()
    assert req is not None and req.kind == "partial" and req.start_pos == int(0.4 * SR)
    t.on_result(req, Hypothesis(words=words("good morning", 0.0)))
    (out,) = t.take_outputs()
    assert out.segment.partial and out.segment.text == "good morning" and out.segment.revision == 1
    assert out.segment.id == f"seg-0-{int(0.4 * SR)}"

    f.audio(0.3)
    assert t.pending() is None
    pause_at = f.pos / SR
    f.vad("pause")
    assert t.pending() is None, "the pause span (pause + pad) has not arrived yet"
    f.audio(0.12)
    req = t.next_request()
    assert req is not None and req.kind == "partial", "a pause triggers a decode at once"
    assert req.final_quality and req.end_pos == round((pause_at + 0.12) * SR)
    t.on_result(req, Hypothesis(words=words("good morning everyone", 0.0)))
    (out,) = t.take_outputs()
    assert out.segment.stable_chars == len("good morning")
    f.audio(0.3)
    f.vad("end", at=pause_at + 0.12)
    (final,) = t.take_outputs()
    assert not final.segment.partial and final.segment.text == "good morning everyone"
    assert final.segment.revision == 3 and final.checkpoint is not None
    assert t.decodes == 2, "the final reused the covering (pause-time, beam) hypothesis"
    f.end()
    assert t.finished


def test_final_decodes_when_last_hypothesis_does_not_cover_the_end() -> None:
    t = tracker()
    f = Feeder(t)
    f.vad("start", at=0.0)
    f.audio(1.2)
    req = t.next_request()
    t.on_result(req, Hypothesis(words=words("hello there", 0.0)))
    t.take_outputs()
    f.audio(0.9)
    f.vad("end")
    assert t.take_outputs() == []
    req = t.next_request()
    assert req is not None and req.kind == "final" and req.end_pos == f.pos
    t.on_result(req, Hypothesis(words=words("hello there my friend", 0.0)))
    (final,) = t.take_outputs()
    assert final.segment.text == "hello there my friend" and not final.segment.partial


def test_noise_only_utterance_publishes_nothing() -> None:
    t = tracker()
    f = Feeder(t)
    f.vad("start", at=0.0)
    f.audio(1.1)
    req = t.next_request()
    t.on_result(req, Hypothesis(words=[]))
    f.vad("end")
    req = t.next_request()
    assert req is not None and req.kind == "final", "a greedy partial is never reused as final"
    t.on_result(req, Hypothesis(words=[]))
    assert t.take_outputs() == []
    f.end()
    assert t.finished


def test_cap_cuts_at_a_stable_word_and_keeps_going() -> None:
    t = tracker(max_utterance_s=4.0)
    f = Feeder(t)
    f.vad("start", at=0.0)
    text = "one two three four five six seven eight nine ten eleven twelve"
    for _ in range(3):
        f.audio(1.1)
        req = t.next_request()
        t.on_result(req, Hypothesis(words=words(text, 0.0)))
    f.audio(1.0)
    req = t.next_request()
    assert req.kind == "cut"
    t.on_result(req, Hypothesis(words=words(text, 0.0)))
    outs = t.take_outputs()
    final = next(o for o in outs if o.final)
    assert final.segment.end <= req.end_pos / SR - 1.0
    assert final.segment.text.startswith("one two")
    track = t.tracks[0]
    assert track.utt_start == round(final.segment.words[-1].end * SR), (
        "next segment starts at the cut"
    )
    assert final.checkpoint["tracks"]["0"]["open_start"] == track.utt_start


def test_checkpoint_restores_committed_position_and_open_utterance() -> None:
    t = tracker()
    f = Feeder(t)
    f.vad("start", at=0.0)
    f.audio(1.5)
    f.vad("end", at=1.3)
    req = t.next_request()
    t.on_result(req, Hypothesis(words=words("all right", 0.0)))
    (final,) = t.take_outputs()
    restored = tracker(checkpoint=final.checkpoint)
    assert restored.tracks[0].committed_pos == int(1.3 * SR)
    assert restored.tracks[0].committed_text == "all right"
    assert restored.resume_id is not None


def test_channels_are_separate_speakers() -> None:
    t = tracker(channels_as_speakers=True)
    f = Feeder(t)
    f.audio(0.1, channel=0)
    f.audio(0.1, channel=1)
    assert {tr.speaker_id for tr in t.tracks.values()} == {"spk_0", "spk_1"}


def test_local_agreement_keeps_confirmed_words_verbatim() -> None:
    la = LocalAgreement()
    la.update(words("the quick brown"))
    shown = la.update(words("The quick brown fox"))
    assert [w.word.strip() for w in la.stable] == ["the", "quick", "brown"]
    shown = la.update(words("the quick browns fox jumps"))
    assert [w.word.strip() for w in shown][:3] == ["the", "quick", "brown"]


def test_repetition_loops_are_cut() -> None:
    looped = words("we will " + "thank you " * 8)
    kept = [w.word.strip() for w in cut_loops(looped)]
    assert kept == ["we", "will", "thank", "you"]
    normal = words("no no no it is fine")
    assert len(cut_loops(normal)) == len(normal)


async def test_scheduler_serves_each_pool_in_order_up_to_its_slots() -> None:
    sched = DecodeScheduler(slots=1)
    order: list[str] = []
    gate = asyncio.Event()

    async def job(name: str, priority: int) -> None:
        async with sched.slot(priority):
            if name == "f1":
                await gate.wait()
            order.append(name)

    first = asyncio.create_task(job("f1", FINAL_PRIORITY))
    await asyncio.sleep(0)
    others = [asyncio.create_task(job(n, FINAL_PRIORITY)) for n in ("f2", "f3")]
    await asyncio.sleep(0)
    assert order == [] and sched.running(FINAL_PRIORITY) == 1, "one slot: the others wait"
    gate.set()
    await asyncio.gather(first, *others)
    assert order == ["f1", "f2", "f3"]
    assert sched.running(FINAL_PRIORITY) == 0


async def test_scheduler_survives_cancelled_waiters() -> None:
    sched = DecodeScheduler()
    async with sched.slot(FINAL_PRIORITY):
        waiter = asyncio.create_task(_hold(sched, FINAL_PRIORITY))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.sleep(0)
    # The slot is free again: this would hang if the cancelled waiter had kept it.
    await asyncio.wait_for(_hold(sched, FINAL_PRIORITY), timeout=5)
    assert sched.running(FINAL_PRIORITY) == 0


async def _hold(sched: DecodeScheduler, priority: int) -> None:
    async with sched.slot(priority):
        await asyncio.sleep(0)


async def _held_until(
    sched: DecodeScheduler, priority: int, release: asyncio.Event
) -> asyncio.Task[None]:
    """A task that holds a slot of `priority` until `release` is set; returns once it runs."""
    running = asyncio.Event()

    async def holder() -> None:
        async with sched.slot(priority):
            running.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await running.wait()
    return task


@pytest.mark.parametrize("slots", [1, 2])
async def test_a_final_never_waits_for_a_partial(slots: int) -> None:
    sched = DecodeScheduler(slots=slots)
    release = asyncio.Event()
    held = await _held_until(sched, PARTIAL_PRIORITY, release)
    await asyncio.wait_for(_hold(sched, FINAL_PRIORITY), timeout=5)  # hangs if it queued
    release.set()
    await held


async def test_a_partial_runs_beside_a_running_final_but_not_beside_another_partial() -> None:
    sched = DecodeScheduler(slots=1)
    release = asyncio.Event()
    held = await _held_until(sched, FINAL_PRIORITY, release)
    async with sched.slot(PARTIAL_PRIORITY):  # its own replica: no wait for the final
        second = asyncio.create_task(_hold(sched, PARTIAL_PRIORITY))
        await asyncio.sleep(0)
        assert not second.done() and sched.running(PARTIAL_PRIORITY) == 1
    await asyncio.wait_for(second, timeout=5)
    release.set()
    await held


async def test_two_slots_run_two_final_quality_decodes_at_once() -> None:
    sched = DecodeScheduler(slots=2)
    both_in = asyncio.Barrier(2)

    async def final() -> None:
        async with sched.slot(FINAL_PRIORITY):
            await asyncio.wait_for(both_in.wait(), timeout=5)

    await asyncio.gather(final(), final())


def test_a_pause_decode_starts_while_a_partial_is_in_flight_and_alone_makes_the_final() -> None:
    t = tracker()
    f = Feeder(t)
    f.vad("start", at=0.0)
    f.audio(1.1)
    partial = t.next_request()
    assert partial is not None and not partial.final_quality
    f.audio(0.3)
    f.vad("pause", at=1.3)
    f.audio(0.2)
    pause = t.next_request()
    assert pause is not None and pause.final_quality, "the pause decode does not wait"
    assert t.next_request() is None, "one decode per lane and track"
    # The partial comes back first: shown, but not kept as the final's hypothesis.
    t.on_result(partial, Hypothesis(words=words("hello their", 0.0)))
    (shown,) = t.take_outputs()
    assert shown.segment.partial and shown.segment.text == "hello their"
    f.vad("end", at=1.3 + 0.12)
    assert t.take_outputs() == [], "the final waits for the pause decode"
    t.on_result(pause, Hypothesis(words=words("hello there", 0.0)))
    (final,) = t.take_outputs()
    assert final.final and final.segment.text == "hello there"
    assert t.decodes == 2 and t.next_request() is None, "no third decode for the final"


def test_a_partial_older_than_the_pause_decode_result_is_dropped() -> None:
    t = tracker()
    f = Feeder(t)
    f.vad("start", at=0.0)
    f.audio(1.1)
    partial = t.next_request()
    f.vad("pause", at=1.1)
    f.audio(0.2)
    pause = t.next_request()
    t.on_result(pause, Hypothesis(words=words("hello there", 0.0)))
    (shown,) = t.take_outputs()
    t.on_result(partial, Hypothesis(words=words("hello", 0.0)))
    assert t.take_outputs() == [], "an older hypothesis would flicker back"
    f.vad("end", at=1.1 + 0.12)
    (final,) = t.take_outputs()
    assert final.segment.text == "hello there"
    assert final.segment.revision == shown.segment.revision + 1


def test_a_claim_that_is_no_longer_needed_is_released() -> None:
    t = tracker()
    f = Feeder(t)
    f.vad("start", at=0.0)
    f.audio(1.1)
    claimed = t.claim()
    assert claimed == (0, "partial")
    f.vad("pause", at=1.0)
    f.audio(0.2)  # while the partial waited for a slot, final-quality work appeared
    assert t.claim() == (0, "quality")
    assert t.request_for(*claimed) is None and not t.tracks[0].partial_busy
    req = t.request_for(0, "quality")
    assert req is not None and req.final_quality


def test_a_claim_waiting_for_a_slot_does_not_hold_the_session_open() -> None:
    t = tracker()
    f = Feeder(t)
    f.vad("start", at=0.0)
    f.audio(1.1)
    assert t.claim() == (0, "partial")  # under load it waits for a slot ...
    f.vad("end", at=1.0)
    final = t.next_request()
    assert final is not None and final.kind == "final"
    f.end()
    assert not t.finished, "the final's decode is running"
    t.on_result(final, Hypothesis(words=words("hello", 0.0)))
    assert t.finished, "... and it has nothing left to decode"


def test_next_utterance_starting_while_the_previous_finalizes_is_not_lost() -> None:
    t = tracker()
    f = Feeder(t)
    f.vad("start", at=0.0)
    f.audio(1.2)
    req = t.next_request()  # a partial decode is in flight ...
    f.audio(0.3)
    f.vad("end")  # ... when the utterance ends
    f.audio(0.5)
    f.vad("start")  # and the next one starts before the decode returns
    t.on_result(req, Hypothesis(words=words("first one", 0.0)))
    final_req = t.next_request()
    assert final_req is not None and final_req.kind == "final"
    t.on_result(final_req, Hypothesis(words=words("first one here", 0.0)))
    (final,) = [o for o in t.take_outputs() if o.final]
    assert final.segment.text == "first one here"
    assert t.tracks[0].utt_start == f.pos, "the second utterance is open"
    assert final.checkpoint["tracks"]["0"]["open_start"] == f.pos
    f.audio(1.1)
    req = t.next_request()
    assert req is not None and req.seg_id == f"seg-0-{int(2.0 * SR)}"


def test_utterances_passing_while_a_final_waits_are_queued_in_order() -> None:
    t = tracker()
    f = Feeder(t)
    f.vad("start", at=0.0)
    f.audio(1.0)
    f.vad("end")
    assert t.pending() == "final"
    # The decode slot is busy elsewhere: two whole utterances come and go meanwhile.
    for _ in range(2):
        f.audio(0.5)
        f.vad("start")
        f.audio(1.0)
        f.vad("end")
    texts = []
    while (req := t.next_request()) is not None:
        assert req.kind == "final"
        t.on_result(req, Hypothesis(words=words(f"utterance {req.start_pos}", 0.0)))
        texts += [o.segment.text for o in t.take_outputs() if o.final]
    assert texts == ["utterance 0", f"utterance {int(1.5 * SR)}", f"utterance {int(3.0 * SR)}"]
    f.end()
    assert t.finished


def test_final_decodes_the_exact_span_when_the_end_differs_from_the_pause_span() -> None:
    t = tracker()
    f = Feeder(t)
    f.vad("start", at=0.0)
    f.audio(1.0)
    f.vad("pause")
    f.audio(0.2)
    req = t.next_request()
    t.on_result(req, Hypothesis(words=words("hello", 0.0)))
    t.take_outputs()
    f.audio(0.5)
    f.vad("end", at=1.5)  # speech went on a little: not the span decoded at the pause
    req = t.next_request()
    assert (
        req is not None
        and req.kind == "final"
        and (req.start_pos, req.end_pos) == (0, int(1.5 * SR))
    )


def test_normalized_words_drop_punctuation_only_tokens() -> None:
    from services.asr.hypothesis import normalize_word

    assert normalize_word(" .") == "" and normalize_word(" Don't!") == "don't"


def test_final_quality_decodes_carry_recent_finals_as_context() -> None:
    t = tracker(context_s=10.0, prompt_chars=60)
    f = Feeder(t)
    f.vad("start", at=0.5)
    f.audio(2.0)
    f.vad("end", at=1.9)
    first = t.next_request()
    assert first.context is None and first.prefix == ""  # nothing final yet
    t.on_result(first, Hypothesis(words=words("all right", 0.1)))  # first word at 0.6 s
    t.take_outputs()
    f.vad("start", at=2.5)
    f.audio(1.5)
    partial = t.next_request()
    assert partial.kind == "partial" and partial.context is None  # partials stay cheap
    t.on_result(partial, Hypothesis(words=words("then let", 0.0)))
    f.vad("end", at=3.4)
    final = t.next_request()
    assert final.kind == "final"
    assert final.prefix == "all right"
    # From 0.1 s before the context's first word up to the utterance start.
    assert len(final.context) == int(2.5 * SR) - (int(0.6 * SR) - int(0.1 * SR))
    assert final.prompt == ""  # the whole committed text is the prefix now


def test_context_keeps_to_its_window() -> None:
    t = tracker(context_s=3.0)
    f = Feeder(t)
    f.vad("start", at=0.0)
    f.audio(1.5)
    f.vad("end", at=1.3)
    t.on_result(t.next_request(), Hypothesis(words=words("all right", 0.0)))
    t.take_outputs()
    f.audio(5.0)  # silence: a long one must not pin old audio in memory
    assert t.tracks[0].history == []
    assert [pos for _id, pos, _s in t.tracks[0].chunks] == [int(1.5 * SR)]  # 0-1.5 s gone
    f.vad("start", at=6.2)
    f.audio(1.0)
    f.vad("end", at=7.4)
    final = t.next_request()
    assert final.kind == "final"
    assert final.context is None  # 0.0 .. 7.4 s does not fit in 3 s


def test_context_is_restored_from_the_checkpoint() -> None:
    t = tracker(context_s=10.0)
    f = Feeder(t)
    f.vad("start", at=0.0)
    f.audio(1.5)
    f.vad("end", at=1.3)
    t.on_result(t.next_request(), Hypothesis(words=words("all right", 0.2)))
    (final,) = t.take_outputs()
    restored = tracker(context_s=10.0, checkpoint=final.checkpoint)
    assert restored.tracks[0].history == [(int(0.2 * SR), "all right")]
    # The resume point is the chunk holding the context, so a new owner re-reads it.
    assert restored.resume_id == "2-0"


def test_after_prefix_needs_the_forced_text_verbatim() -> None:
    spoken = words("all right, then. let us go")
    rest = words_after_prefix(spoken, "All right then")
    assert [w.word for w in rest] == [" let", " us", " go"]
    assert words_after_prefix(spoken, "all left") == []
    assert words_after_prefix(words("all right"), "all right") == []  # nothing new
