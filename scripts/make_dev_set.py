#!/usr/bin/env python3
"""Synthesize a held-out development set for WER work (not committed; written to out/dev/).

Five conversations with other espeak-ng voices and other texts than the committed
fixtures, built the same way (scripts/make_fixtures.py: pauses 0.3-1.5 s, noise
floor, FLAC plus JSON reference). Decoder settings tuned on the committed fixtures
alone would be tuned to six recordings; this set is the check that a change helps
speech it was not tuned on. docs/BENCHMARKS.md reports WER on both.

Usage:  python3 scripts/make_dev_set.py   then   python -m bench.replay out/dev/*.flac --offline
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf

# name: (voice of spk_0, voice of spk_1, stereo, lines); a voice is
# (espeak-ng voice, words per minute, pitch, word gap), as mf.Voice.
CONVS = {
    "dev_support": (
        ("en-us+m3", 160, 40, 1),
        ("en+f2", 150, 65, 1),
        False,
        [
            "Hello, thanks for calling technical support, my name is Daniel.",
            "Hi Daniel, my laptop will not connect to the office network since this morning.",
            "I am sorry to hear that. Have you tried restarting the router?",
            "Yes, I restarted it twice and nothing changed.",
            "Okay. Can you open the network settings and read me the address you see?",
            "It says one nine two dot one six eight dot zero dot twelve.",
            "That looks right. Now please turn off the wireless and turn it on again.",
            "Done. Oh, it works now. The page is loading.",
            "Great. Is there anything else I can help you with today?",
            "No, that was everything. Thank you so much.",
            "You are welcome. Have a nice afternoon.",
        ],
    ),
    "dev_planning": (
        ("en-gb-x-rp", 150, 45, 1),
        ("en-us+f4", 155, 70, 1),
        False,
        [
            "Okay, let's look at the plan for the product launch.",
            "Sure. Marketing wants the campaign to start on the third of March.",
            "That is too early. The mobile app still has several open bugs.",
            "How many bugs are we talking about?",
            "Around twenty, but only four of them are serious.",
            "Could the team fix the serious ones within two weeks?",
            "Probably, if nobody gets pulled into other projects.",
            "Then I will talk to the other managers and protect the team.",
            "Good idea. Should we also delay the press release?",
            "No, the press release can go out as planned.",
            "Fine. Let's meet again on Friday to check progress.",
            "Sounds good. I will send a summary to everyone tonight.",
        ],
    ),
    "dev_call": (
        ("en-us", 165, 50, 1),
        ("en-gb-scotland+f1", 150, 60, 1),
        True,
        [
            "Good morning, you are speaking with the travel desk.",
            "Good morning. I need to book a flight to Chicago for next Tuesday.",
            "Certainly. Would you prefer a morning or an evening flight?",
            "A morning flight, please, and an aisle seat if possible.",
            "There is a flight at eight fifteen with an aisle seat available.",
            "Perfect, please book that one.",
            "Done. Do you also need a hotel near the airport?",
            "No thanks, my company already booked a hotel downtown.",
            "All right. The confirmation will arrive by email in a few minutes.",
            "Thank you for your help.",
        ],
    ),
    "dev_interview": (
        ("en-us+m7", 150, 30, 2),
        ("en+f5", 160, 75, 1),
        False,
        [
            "Thank you for coming in today. Please tell me a little about yourself.",
            "Of course. I have worked as a data analyst for five years.",
            "What kind of data did you work with in your last job?",
            "Mostly sales and customer data for a large retail company.",
            "Which tools did you use every day?",
            "I used Python, spreadsheets, and a lot of database queries.",
            "Can you describe a project you are proud of?",
            "I built a report that helped the stores reduce waste by ten percent.",
            "That is impressive. Why do you want to leave your current position?",
            "I am looking for a team where I can learn more about machine learning.",
            "Do you have any questions for us?",
            "Yes. How large is the team, and how do you measure success?",
            "The team has eight people, and we look at the impact on our customers.",
        ],
    ),
    "dev_stereo_bank": (
        ("en-gb", 150, 45, 1),
        ("en-us+f3", 155, 65, 1),
        True,
        [
            "Welcome to the bank. How can I help you today?",
            "I lost my credit card yesterday and I would like to block it.",
            "I understand. Can you confirm your full name and date of birth?",
            "My name is Sarah Miller, and I was born on the fourth of July.",
            "Thank you, Sarah. I have blocked the card now.",
            "Will I get a new card soon?",
            "Yes, a new card will arrive within five working days.",
            "Can I still pay with my phone until then?",
            "No, the phone payments used the old card, so they are blocked too.",
            "Okay, I understand. Thanks for your quick help.",
        ],
    ),
}


def main() -> int:
    mf.require_tools()
    mf.ROOT = Path(__file__).resolve().parent.parent / "out"
    for name, (v0, v1, stereo, lines) in CONVS.items():
        mf.VOICES["spk_0"] = mf.Voice(*v0)
        mf.VOICES["spk_1"] = mf.Voice(*v1)
        fx = mf.Fixture(
            name=name,
            path=f"dev/{name}.flac",
            lines=[(f"spk_{i % 2}", text) for i, text in enumerate(lines)],
            stereo=stereo,
        )
        (mf.ROOT / "dev").mkdir(parents=True, exist_ok=True)
        meta = mf.build(fx)
        print(f"out/dev/{name}.flac {meta['channels']}ch {meta['duration_s']:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
