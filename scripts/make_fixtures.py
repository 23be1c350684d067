#!/usr/bin/env python3
"""Synthesize the speech fixtures used by the tests, the benchmark and the demo.

Every fixture is a conversation with known text, spoken by two espeak-ng voices,
resampled and trimmed with sox, laid out on a timeline with fixed pauses, mixed
with a faint deterministic noise floor (about -50 dBFS, so silence is never
digital zero) and encoded to FLAC.  Next to each FLAC file a JSON sidecar with the
same stem holds the reference transcript and the exact position of every
utterance:

    {"sample_rate", "channels", "duration_s", "text",
     "utterances": [{"speaker", "channel", "start_s", "end_s", "text"}]}

A fixture that plants things for a test to find (questions, action items, risk
terms, an overlap) lists them by utterance index under "planted".  In a stereo
fixture an utterance may start a fixed time before the previous one ends (an
interruption on the other channel).

The output is deterministic: voices, rates, pitches, pauses and noise seeds are
fixed here, sox runs in repeatable mode without dither, and the noise is made by
Python's seeded PRNG.  Only Python 3.11+ stdlib plus the espeak-ng, sox and flac
command-line tools are needed (Debian: espeak-ng sox libsox-fmt-all flac); they
are needed to regenerate the fixtures, never at test time.

Usage:  python3 scripts/make_fixtures.py [--only NAME ...] [--out-root DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
import wave
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RATE = 16_000
FULL_SCALE = 32767

# Noise floor under everything (RMS, dBFS).
NOISE_FLOOR_DBFS = -50.0
# Peak level every utterance is normalised to before mixing (dBFS).
SPEECH_PEAK_DBFS = -3.0
# Silence before the first and after the last utterance (seconds).
LEAD_IN_S = 0.6
TAIL_S = 0.8
# Pauses between utterances are drawn (with a fixed seed) from this range.
PAUSE_RANGE_S = (0.3, 1.5)


@dataclass(frozen=True)
class Voice:
    """espeak-ng settings for one speaker."""

    name: str  # espeak-ng voice (+ variant)
    speed: int  # words per minute (-s)
    pitch: int  # 0-99 (-p)
    word_gap: int  # extra pause between words, units of 10 ms (-g)


VOICES: dict[str, Voice] = {
    # A low, male American voice and a higher, female British variant.
    "spk_0": Voice(name="en-us", speed=155, pitch=35, word_gap=1),
    "spk_1": Voice(name="en-gb+f3", speed=150, pitch=70, word_gap=1),
}


@dataclass(frozen=True)
class Fixture:
    name: str
    path: str  # FLAC path relative to the repository root
    lines: list[tuple[str, str]] = field(default_factory=list)  # (speaker, text)
    stereo: bool = False  # speaker N only on channel N
    noise_only_s: float = 0.0  # >0: a no-speech fixture (see make_noise_fixture)
    pause_range_s: tuple[float, float] = PAUSE_RANGE_S
    noise_floor_dbfs: float | None = NOISE_FLOOR_DBFS  # None: digital silence between speech
    speech_peak_dbfs: float = SPEECH_PEAK_DBFS
    precision_bits: int = 16  # fewer: samples rounded to a coarser step (FLAC drops the bits)
    # Utterance index -> seconds it starts before the previous utterance ends (stereo).
    overlaps_s: dict[int, float] = field(default_factory=dict)
    # What the fixture plants for a test, by utterance index; copied into the sidecar.
    planted: dict[str, Any] = field(default_factory=dict)


CONV_SHORT = Fixture(
    name="conv_short",
    path="tests/fixtures/conv_short.flac",
    lines=[
        ("spk_0", "Good morning, thanks for joining."),
        ("spk_1", "Can we move the planning meeting to Thursday?"),
        ("spk_0", "Thursday afternoon works for me."),
        ("spk_1", "Did the team review the contract?"),
        ("spk_0", "They did, and I will send the proposal by Friday."),
        ("spk_1", "Perfect, thank you very much."),
    ],
)

CALL_STEREO = Fixture(
    name="call_stereo",
    path="tests/fixtures/call_stereo.flac",
    stereo=True,
    lines=[
        ("spk_0", "Hello, support desk, how can I help?"),
        ("spk_1", "Hi, I am calling about an invoice."),
        ("spk_0", "Which account was it sent to?"),
        ("spk_1", "It went to our main office."),
        ("spk_0", "I see a duplicate charge on that invoice."),
        ("spk_1", "Please remove it and send me a new copy."),
    ],
)

# A support call for the semantic stage: agent on channel 0, customer on channel 1. It
# plants questions (some worded as requests, which ASR may leave without a '?'), action
# items with their speaker, one turn per risk tag, neutral turns, and one interruption:
# the customer cuts in 1.5 s before the agent's utterance 6 ends. Every other pause is at
# least 0.8 s. To keep 45 s of stereo under 400 KB it is coded like a VoIP call with
# silence suppression: digital silence between utterances (a noise floor alone costs
# about 2 bits a sample in FLAC), speech peaking at -9 dBFS, 12-bit precision (the
# rounding noise sits near -77 dBFS).
SUPPORT_CALL = Fixture(
    name="support_call",
    path="tests/fixtures/support_call.flac",
    stereo=True,
    pause_range_s=(0.8, 1.0),
    noise_floor_dbfs=None,
    speech_peak_dbfs=-9.0,
    precision_bits=12,
    overlaps_s={7: 1.5},
    lines=[
        ("spk_0", "Support desk, how can I help?"),
        ("spk_1", "Hi, do you know why the price went up."),
        ("spk_0", "Could you tell me the email on your account."),
        ("spk_1", "It is my work email."),
        ("spk_0", "Thanks, let me check your account."),
        ("spk_1", "Your prices are too expensive for me."),
        ("spk_0", "We have a smaller plan with the same features."),
        ("spk_1", "No, I just want to cancel my subscription today."),
        ("spk_0", "We'll refund the charge, and I will send you the confirmation email."),
        ("spk_1", "I want to speak to a supervisor."),
        ("spk_0", "May I put you on hold while I transfer your call."),
        ("spk_1", "I will wait. What is the reference number."),
        ("spk_0", "It is in the email."),
    ],
    planted={
        # Utterance indices. Questions: one per listed utterance.
        "questions": [0, 1, 2, 10, 11],
        # Commitments: the utterance, its speaker and the words that commit.
        "actions": [
            {"utterance": 4, "speaker": "spk_0", "text": "let me check your account"},
            {"utterance": 8, "speaker": "spk_0", "text": "We'll refund the charge"},
            {"utterance": 8, "speaker": "spk_0", "text": "I will send you the confirmation email"},
            {"utterance": 11, "speaker": "spk_1", "text": "I will wait"},
        ],
        # Utterance index (as a string: JSON keys) -> the risk tags it must carry.
        "risk": {
            "1": ["pricing"],
            "5": ["pricing"],
            "7": ["churn_risk"],
            "8": ["pricing"],
            "9": ["escalation"],
        },
        "neutral": [3, 6, 12],
        # The customer's utterance 7 starts 1.5 s before the agent's utterance 6 ends.
        "interruptions": [{"utterance": 7, "by": "spk_1", "of": "spk_0", "interrupted": 6}],
    },
)

NOISE = Fixture(name="noise", path="tests/fixtures/noise.flac", noise_only_s=4.0)

MEETING_A = Fixture(
    name="meeting_a",
    path="bench/fixtures/meeting_a.flac",
    lines=[
        ("spk_0", "Let us begin with an update on the website project."),
        ("spk_1", "The design is almost done, and the developers start next week."),
        ("spk_0", "Good. Are we still within the budget we agreed on?"),
        ("spk_1", "We are slightly over, mostly because of extra testing."),
        ("spk_0", "How much more time do we need for the first release?"),
        ("spk_1", "About two more weeks of work from the whole team."),
        ("spk_0", "I can ask finance for more money, but I need a written summary."),
        ("spk_1", "I will write the summary tonight and send it in the morning."),
        ("spk_0", "Thank you. What did the customers say about the new dashboard?"),
        ("spk_1", "Most of them like it, but the reports are hard to read."),
        ("spk_0", "Can we make the charts larger?"),
        ("spk_1", "Yes, the designers already have a few ideas."),
        ("spk_0", "Great, let us meet again at the end of the month."),
    ],
)

MEETING_B = Fixture(
    name="meeting_b",
    path="bench/fixtures/meeting_b.flac",
    lines=[
        ("spk_1", "Thanks everyone for joining the quarterly budget review."),
        ("spk_0", "Before we begin, do we have the latest sales numbers?"),
        ("spk_1", "Yes, sales grew in every region except the south."),
        ("spk_0", "What do you think caused the slower growth there?"),
        ("spk_1", "We lost two large customers early in the spring."),
        ("spk_0", "Should we hire another account manager for that region?"),
        ("spk_1", "I think so, and we could also offer better support contracts."),
        ("spk_0", "Please prepare a hiring plan and a cost estimate for next week."),
        ("spk_1", "I will have both ready before our meeting on Wednesday."),
        ("spk_0", "Thank you, that is all for today."),
    ],
)

CALL_C = Fixture(
    name="call_c",
    path="bench/fixtures/call_c.flac",
    stereo=True,
    lines=[
        ("spk_0", "Good afternoon, this is the billing team."),
        ("spk_1", "Hello, I would like to change the payment date on my account."),
        ("spk_0", "Of course, which date would you prefer?"),
        ("spk_1", "The middle of the month would be much easier for us."),
        ("spk_0", "I can move it to the middle of the month, starting in June."),
        ("spk_1", "That would be great. Will there be an extra fee for the change?"),
        ("spk_0", "No, there is no fee, and your current plan stays the same."),
        ("spk_1", "Good. Can you also send me a copy of the last three statements?"),
        ("spk_0", "Yes, I will send them to the email address on file."),
        ("spk_1", "Thank you very much for your help today."),
        ("spk_0", "You are welcome, have a nice day."),
    ],
)

SAMPLE = Fixture(
    name="sample",
    path="streamscribe/data/sample.flac",
    lines=[
        ("spk_0", "Thanks for calling customer support, how can I help you?"),
        ("spk_1", "Hello, my order arrived today, but the box was badly damaged."),
        ("spk_0", "I am sorry to hear that. Is the product working?"),
        ("spk_1", "The screen is cracked, and this is the second time this has happened."),
        ("spk_0", "I understand your frustration. I will send you a replacement today."),
        ("spk_1", "Thank you. Do I need to return the broken one?"),
        ("spk_0", "Yes, I will email you a free return label within the hour."),
        ("spk_1", "Great, thanks for sorting this out so quickly."),
    ],
)

FIXTURES: list[Fixture] = [
    CONV_SHORT,
    CALL_STEREO,
    SUPPORT_CALL,
    NOISE,
    MEETING_A,
    MEETING_B,
    CALL_C,
    SAMPLE,
]


# --------------------------------------------------------------------------- tools


def require_tools() -> None:
    missing = [t for t in ("espeak-ng", "sox", "flac") if shutil.which(t) is None]
    if missing:
        sys.exit(
            f"missing tools: {', '.join(missing)} "
            "(apt-get install -y espeak-ng sox libsox-fmt-all flac)"
        )


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")


def read_wav_mono16(path: Path) -> array[int]:
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != SAMPLE_RATE:
            raise RuntimeError(f"unexpected wav format in {path}")
        data = array("h", w.readframes(w.getnframes()))
    if sys.byteorder == "big":
        data.byteswap()
    return data


def write_wav16(path: Path, channels: list[array[int]]) -> None:
    n = len(channels[0])
    if len(channels) == 1:
        interleaved = array("h", channels[0])
    else:
        interleaved = array("h", bytes(2 * n * len(channels)))
        for c, ch in enumerate(channels):
            interleaved[c :: len(channels)] = ch
    if sys.byteorder == "big":
        interleaved.byteswap()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(interleaved.tobytes())


def synthesize(
    text: str, voice: Voice, workdir: Path, peak_dbfs: float = SPEECH_PEAK_DBFS
) -> array[int]:
    """Speak ``text`` and return tight (leading/trailing-silence-trimmed) 16 kHz samples."""
    raw = workdir / "raw.wav"
    clip = workdir / "clip.wav"
    run(
        [
            "espeak-ng",
            "-v", voice.name,
            "-s", str(voice.speed),
            "-p", str(voice.pitch),
            "-g", str(voice.word_gap),
            "-w", str(raw),
            text,
        ]
    )  # fmt: skip
    # -R: repeatable, -D: no dither -> byte-identical output on every run.
    run(
        [
            "sox", "-R", "-D", str(raw),
            "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(clip),
            "silence", "1", "0.005", "0.3%",
            "reverse",
            "silence", "1", "0.005", "0.3%",
            "reverse",
            "rate", "-v", str(SAMPLE_RATE),
            "norm", str(peak_dbfs),
        ]
    )  # fmt: skip
    return read_wav_mono16(clip)


def encode_flac(wav: Path, flac: Path) -> None:
    flac.parent.mkdir(parents=True, exist_ok=True)
    run(["flac", "--silent", "--force", "-8", "--no-padding", "-o", str(flac), str(wav)])


# --------------------------------------------------------------------------- signals


def noise_floor(n: int, seed: str, dbfs: float = NOISE_FLOOR_DBFS) -> list[float]:
    """Gaussian 'room tone' at `dbfs` RMS, low-passed (one pole) to a brownish
    hiss: sounds like a quiet room and keeps the FLAC files small."""
    rng = random.Random(seed)
    a = 0.9  # pole; the innovation is scaled so the output RMS stays at the target
    sigma = FULL_SCALE * 10 ** (dbfs / 20) * math.sqrt(1 - a * a)
    out = [0.0] * n
    y = 0.0
    gauss = rng.gauss
    for i in range(n):
        y = a * y + gauss(0.0, sigma)
        out[i] = y
    return out


def pink_noise(n: int, seed: str, rms_dbfs: float) -> list[float]:
    """Pink noise (Paul Kellet's economy filter), scaled to ``rms_dbfs``."""
    rng = random.Random(seed)
    b0 = b1 = b2 = 0.0
    out = [0.0] * n
    for i in range(n):
        white = rng.gauss(0.0, 1.0)
        b0 = 0.99765 * b0 + white * 0.0990460
        b1 = 0.96300 * b1 + white * 0.2965164
        b2 = 0.57000 * b2 + white * 1.0526913
        out[i] = b0 + b1 + b2 + white * 0.1848
    rms = math.sqrt(sum(v * v for v in out) / n)
    gain = FULL_SCALE * 10 ** (rms_dbfs / 20) / rms
    fade = int(0.02 * SAMPLE_RATE)
    for i in range(n):
        env = min(1.0, i / fade, (n - 1 - i) / fade)
        out[i] *= gain * env
    return out


def to_int16(signal: list[float], precision_bits: int = 16) -> array[int]:
    if precision_bits == 16:
        return array("h", (max(-32768, min(32767, round(v))) for v in signal))
    step = 1 << (16 - precision_bits)
    top = 32768 - step
    return array("h", (max(-32768, min(top, step * round(v / step))) for v in signal))


def pauses_for(
    name: str, count: int, pause_range_s: tuple[float, float] = PAUSE_RANGE_S
) -> list[float]:
    rng = random.Random(f"{name}:pauses")
    return [round(rng.uniform(*pause_range_s), 2) for _ in range(count)]


# --------------------------------------------------------------------------- fixtures


def make_speech_fixture(fx: Fixture, workdir: Path) -> dict[str, Any]:
    clips = [synthesize(text, VOICES[spk], workdir, fx.speech_peak_dbfs) for spk, text in fx.lines]
    gaps = pauses_for(fx.name, len(clips) - 1, fx.pause_range_s)
    if fx.overlaps_s and not fx.stereo:
        raise ValueError(f"{fx.name}: overlapping utterances need one channel per speaker")

    utterances = []
    pos = round(LEAD_IN_S * SAMPLE_RATE)
    placements = []
    for i, ((spk, text), clip) in enumerate(zip(fx.lines, clips, strict=True)):
        if i in fx.overlaps_s:
            # Start before the previous utterance ends; what follows waits for both.
            start = placements[-1][0] + len(placements[-1][1])
            pos = start - round(fx.overlaps_s[i] * SAMPLE_RATE)
            if pos <= placements[-1][0]:
                raise ValueError(f"{fx.name}: utterance {i} overlaps the whole previous one")
        placements.append((pos, clip, spk))
        channel = int(spk.split("_")[1]) if fx.stereo else None
        utterances.append(
            {
                "speaker": spk,
                "channel": channel,
                "start_s": round(pos / SAMPLE_RATE, 3),
                "end_s": round((pos + len(clip)) / SAMPLE_RATE, 3),
                "text": text,
            }
        )
        pos = max(p + len(c) for p, c, _ in placements)
        if i < len(gaps):
            pos += round(gaps[i] * SAMPLE_RATE)
    total = pos + round(TAIL_S * SAMPLE_RATE)

    n_channels = 2 if fx.stereo else 1
    tracks = [
        noise_floor(total, f"{fx.name}:floor:{c}", fx.noise_floor_dbfs)
        if fx.noise_floor_dbfs is not None
        else [0.0] * total
        for c in range(n_channels)
    ]
    for start, clip, spk in placements:
        track = tracks[int(spk.split("_")[1])] if fx.stereo else tracks[0]
        for j, v in enumerate(clip):
            track[start + j] += v

    wav = workdir / "mix.wav"
    write_wav16(wav, [to_int16(t, fx.precision_bits) for t in tracks])
    encode_flac(wav, ROOT / fx.path)
    return {
        "sample_rate": SAMPLE_RATE,
        "channels": n_channels,
        "duration_s": round(total / SAMPLE_RATE, 3),
        "text": " ".join(text for _, text in fx.lines),
        "utterances": utterances,
        **({"planted": fx.planted} if fx.planted else {}),
    }


def make_noise_fixture(fx: Fixture, workdir: Path) -> dict[str, Any]:
    """1 s near-silence, 2 s of pink noise at a moderate level, 1 s near-silence."""
    total = round(fx.noise_only_s * SAMPLE_RATE)
    track = noise_floor(total, f"{fx.name}:floor:0")
    start, length = SAMPLE_RATE, 2 * SAMPLE_RATE
    burst = pink_noise(length, f"{fx.name}:pink", rms_dbfs=-26.0)
    for j, v in enumerate(burst):
        track[start + j] += v
    wav = workdir / "mix.wav"
    write_wav16(wav, [to_int16(track)])
    encode_flac(wav, ROOT / fx.path)
    return {
        "sample_rate": SAMPLE_RATE,
        "channels": 1,
        "duration_s": round(total / SAMPLE_RATE, 3),
        "text": "",
        "utterances": [],
    }


def build(fx: Fixture) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"fixture-{fx.name}-") as tmp:
        workdir = Path(tmp)
        meta = (
            make_noise_fixture(fx, workdir) if fx.noise_only_s else make_speech_fixture(fx, workdir)
        )
    sidecar = (ROOT / fx.path).with_suffix(".json")
    sidecar.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def main(argv: list[str] | None = None) -> int:
    global ROOT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", metavar="NAME", help="fixture names to build")
    parser.add_argument(
        "--out-root", type=Path, default=ROOT, help="write under this root (default: repo)"
    )
    args = parser.parse_args(argv)
    ROOT = args.out_root.resolve()
    require_tools()

    names = {fx.name for fx in FIXTURES}
    wanted = set(args.only) if args.only else names
    unknown = wanted - names
    if unknown:
        parser.error(f"unknown fixture(s): {', '.join(sorted(unknown))}")

    for fx in FIXTURES:
        if fx.name not in wanted:
            continue
        meta = build(fx)
        words = len(meta["text"].split())
        size = (ROOT / fx.path).stat().st_size
        print(
            f"{fx.path:34s} {meta['channels']}ch {meta['duration_s']:7.2f}s "
            f"{len(meta['utterances']):3d} utts {words:4d} words {size / 1024:7.1f} KiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
