#!/usr/bin/env python3
"""Synthesize a held-out development set for WER work (not committed; written to out/dev/).

Fifteen conversations (six stereo, one speaker per channel) with other espeak-ng
voices and other texts than the committed fixtures, built the same way
(scripts/make_fixtures.py: pauses 0.3-1.5 s, noise floor, FLAC plus JSON reference).
Decoder settings tuned on the committed fixtures alone would be tuned to six
recordings; this set is the check that a change helps speech it was not tuned on.
docs/BENCHMARKS.md reports WER on both (its tables were measured on the first five).

Usage:  python3 scripts/make_dev_set.py   then   python -m bench.replay out/dev/*.flac --offline
        python3 scripts/make_dev_set.py --held-out   (three more, in out/held/; see HELD_OUT)
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
    # Ten more (4 stereo). "en-gb+VARIANT" is not used: espeak-ng 1.51 ignores the
    # variant after "en-gb" and speaks plain en-gb; "en+VARIANT" (also gmw/en) works.
    "dev_insurance": (
        ("en-gb-x-rp+m3", 150, 40, 1),
        ("en-029+f3", 160, 68, 1),
        False,
        [
            "Good morning, claims department, this is Oliver speaking.",
            "Hello Oliver. Someone drove into my parked car on Saturday evening.",
            "I am sorry to hear that. Was anyone hurt?",
            "No, thankfully the car was empty.",
            "Good. Can you give me your policy number, please?",
            "Yes, it is four seven two nine, five five one, eight.",
            "Thank you. I can see your policy covers collision damage with a deductible of "
            "two hundred and fifty dollars.",
            "Does that mean I pay the first two hundred and fifty?",
            "Right. The rest is paid by us after the repair shop sends the estimate.",
            "How long does the whole process usually take?",
            "Usually about ten working days, so you should hear from us before the "
            "twentieth of May.",
            "Okay. Thanks for explaining everything so clearly.",
        ],
    ),
    "dev_hotel": (
        ("en-us+f2", 165, 72, 1),
        ("en-gb-scotland+m2", 145, 38, 1),
        True,
        [
            "Thank you for calling the Harbor View Hotel, this is Emma. How may I help you?",
            "Hello Emma. I would like to book a double room for three nights.",
            "Of course. Which dates are you looking at?",
            "From Thursday the twelfth of October until Sunday the fifteenth.",
            "Let me check. Yes, we have a double room with a sea view for one hundred and "
            "forty pounds a night.",
            "Is breakfast included in that price?",
            "It is, and breakfast is served from seven until half past ten.",
            "Lovely. Could we also have a late checkout on Sunday?",
            "I can offer a checkout at one o'clock at no extra charge.",
            "Perfect. Please go ahead and book it under the name Campbell.",
            "Done. Your booking reference is H R three eight six.",
            "Thank you very much.",
        ],
    ),
    "dev_doctor": (
        ("en-gb-x-rp+f4", 148, 62, 1),
        ("en-us+m5", 155, 45, 1),
        False,
        [
            "Hello, you are through to the Riverside medical practice.",
            "Hi, I would like to make an appointment with Doctor Patel, please.",
            "Certainly. Are you already registered with us?",
            "Yes, I have been a patient here for about six years.",
            "Could I have your date of birth?",
            "The ninth of November, nineteen eighty two.",
            "Thank you, Mister Johnson. What is the appointment for?",
            "I have had a cough for almost three weeks, and it gets worse at night.",
            "Doctor Patel has a free slot on Wednesday at twenty past four. Would that suit "
            "you, or would you prefer a morning appointment later in the week?",
            "Wednesday afternoon is fine.",
            "Great, you are booked in. Please arrive ten minutes early.",
            "Will do. Thanks, goodbye.",
        ],
    ),
    "dev_hr": (
        ("en+f4", 155, 66, 1),
        ("en-029+m1", 150, 40, 2),
        False,
        [
            "Thanks for making time, Marcus. I wanted to talk about your holiday request.",
            "Sure. I asked for two weeks off in August.",
            "Right. The problem is that three other people on your team asked for the same "
            "weeks, and we cannot close the support desk.",
            "I see. Which weeks are still free?",
            "The last week of July and the first week of September are both open.",
            "Could I take one week in July and one in September instead?",
            "Yes, that would work for us.",
            "Okay. Do I need to fill in a new form?",
            "No, I will update the request myself and you will get an email by Friday.",
            "Great. And how many days will I have left for the rest of the year?",
            "After these two weeks you will still have seven days left.",
            "Perfect, thank you.",
        ],
    ),
    "dev_school": (
        ("en-gb-x-gbclan+f2", 150, 70, 1),
        ("en-us+m1", 170, 36, 1),
        True,
        [
            "Good evening, Mister Rivera. Thank you for coming to the parents evening.",
            "Good evening. How is Sophie doing this term?",
            "She is doing very well in science and history.",
            "That is good to hear. What about mathematics?",
            "Mathematics is harder for her. Her last test score was sixty two out of a "
            "hundred, which is a little below the class average.",
            "Is there anything we can do at home to help?",
            "Yes. We run a free homework club every Tuesday and Thursday after school, from "
            "half past three until five, and I think it would really help her.",
            "Does she need to sign up in advance?",
            "Just send me an email before Monday.",
            "Okay.",
            "The next test is on the twenty third of March, so there is still plenty of time.",
            "Thank you. We will talk to her tonight.",
        ],
    ),
    "dev_shipping": (
        ("en-us-nyc+m4", 172, 44, 1),
        ("en-gb-scotland+f3", 152, 64, 1),
        False,
        [
            "Northline freight, this is Tony. What can I do for you?",
            "Hello Tony, this is Fiona from Glen Textiles. I am calling about a late delivery.",
            "Sure. Do you have the tracking number?",
            "Yes. It is N L nine zero four four seven.",
            "Okay, I see it. The shipment left our warehouse in Newark on Monday, but the "
            "truck broke down near Philadelphia.",
            "When will it arrive, then?",
            "We moved the pallets to another truck this morning, so tomorrow before noon.",
            "There are twelve pallets in total. Are all of them on the new truck?",
            "Let me check. Yes, all twelve.",
            "Good. Will we get a discount for the delay?",
            "I can take fifteen percent off the freight charge.",
            "Right. Please send that in writing.",
            "No problem.",
        ],
    ),
    "dev_car_repair": (
        ("en-gb-x-gbcwmd+m6", 158, 38, 1),
        ("en-us+f5", 162, 74, 1),
        True,
        [
            "Hiya, it is Steve from the garage. We have had a look at your car.",
            "Hi Steve. Is it bad news?",
            "Not too bad. The front brake pads are worn down and the battery is about six "
            "years old.",
            "How much would it cost to fix both?",
            "The brake pads are one hundred and ten pounds, and a new battery is ninety five, "
            "so two hundred and five in total, including labour.",
            "Can you do the brakes today and the battery next month?",
            "We can, but I would not wait too long with the battery, because it might not "
            "start on a cold morning.",
            "Fair enough. Then please do both.",
            "Okay. It will be ready by half past five.",
            "Do you take card payments?",
            "Yes, card or cash.",
            "Great. See you at half five.",
        ],
    ),
    "dev_restaurant": (
        ("en-029+f2", 155, 60, 1),
        ("en-gb-x-rp+m2", 142, 48, 1),
        False,
        [
            "Good afternoon, Blue Lagoon restaurant, Grace speaking.",
            "Good afternoon. I would like to reserve a table for Saturday evening.",
            "Of course. For how many people?",
            "There will be eight of us. It is my mother's seventieth birthday.",
            "How lovely. We have a table in the garden room at seven thirty.",
            "That sounds perfect. Can we bring our own cake?",
            "Yes, but we charge a small fee of two pounds per person for serving it.",
            "That is fine. One of the guests is vegan. Do you have vegan dishes?",
            "We have three vegan main courses and a vegan dessert.",
            "Wonderful. The booking is under the name Harrington.",
            "Could I also have a phone number?",
            "Yes, it is zero seven seven zero, three one two, four eight six.",
            "Thank you, see you on Saturday.",
        ],
    ),
    "dev_it_outage": (
        ("en-us+m6", 175, 42, 1),
        ("en+f1", 150, 56, 1),
        True,
        [
            "Okay, everyone, let's start the incident call. Priya, what do we know so far?",
            "The payment service has been down since ten forty this morning.",
            "How many customers are affected?",
            "Roughly twelve thousand orders have failed in the last hour.",
            "Do we know the cause yet?",
            "We think it is the database update from last night. The new index made the "
            "main query about twenty times slower, and the connection pool ran out.",
            "Can we roll back the update?",
            "Yes. The rollback takes about fifteen minutes.",
            "Then do it now.",
            "Right.",
            "I will write to the customer team so they can answer the phone calls, and "
            "we will meet again at half past eleven to check that everything works.",
            "Sounds good. I will post updates in the incident channel every ten minutes.",
        ],
    ),
    "dev_sales": (
        ("en-gb-scotland+m4", 160, 50, 1),
        ("en-us-nyc+f4", 168, 70, 1),
        False,
        [
            "Hello Rachel, thanks for taking the time to talk to me today.",
            "Hi Andrew. Sure, I have about twenty minutes.",
            "I wanted to show you our new scheduling software for your clinics.",
            "We already use a scheduling tool, but our staff find it slow.",
            "How many clinics and staff members do you have?",
            "Four clinics and around sixty people in total.",
            "For that size, our standard plan costs nine dollars per user per month, and the "
            "first thirty days are free.",
            "Does it work with our billing system?",
            "Yes. It connects to most billing systems, and we help you set it up at no cost.",
            "Okay. Can you send me a proposal by the end of the week?",
            "Yes, please expect it by Thursday.",
            "Great, I will share it with our director on the first of June.",
        ],
    ),
}

# Three more, written to out/held/ with --held-out: the check that the live pipeline's
# acceptance flow (`up`, `push --wait`, `transcript`) holds on speech no option was ever
# tuned on. Keep them out of tuning runs, or they stop being a check.
HELD_OUT = {
    "held_garden": (
        ("en-us+m5", 155, 45, 1),
        ("en+f4", 150, 68, 1),
        False,
        [
            "Good morning, this is Green Valley garden centre, how can I help?",
            "Hello, I bought three apple trees from you last month and two of them look sick.",
            "I am sorry to hear that. What do the leaves look like?",
            "They have brown spots and some of them are falling off already.",
            "That sounds like a fungus. Did you water them every day?",
            "Yes, every evening, because the weather was so hot.",
            "Too much water can cause that. Try watering twice a week instead.",
            "Okay. Can I still return them if they do not recover?",
            "Of course. Bring the receipt within ninety days and we will replace them.",
            "Perfect, I still have it. Thank you very much for your help.",
            "You are welcome. Good luck with the trees.",
        ],
    ),
    "held_library": (
        ("en-gb-x-gbclan", 150, 50, 1),
        ("en-us+m2", 160, 40, 1),
        False,
        [
            "Welcome to the city library. Are you returning these books?",
            "Yes, and I would also like to renew my membership card.",
            "No problem. Your card expired on the twelfth of August.",
            "I see. Do I need to pay a fee for the renewal?",
            "There is a small fee of five pounds for adults.",
            "That is fine. Can I pay by card?",
            "Yes, just tap it on the reader here.",
            "Done. Also, do you have any books about ancient Rome?",
            "We have a whole shelf on the second floor, next to the history section.",
            "Great, I will have a look before I leave.",
            "Enjoy your reading, and remember we close at six tonight.",
        ],
    ),
    "held_stereo_taxi": (
        ("en-gb-x-gbcwmd", 150, 45, 1),
        ("en-us+f2", 155, 66, 1),
        True,
        [
            "City taxis, where would you like to be picked up?",
            "Hi, I need a car at the central station, main entrance, please.",
            "Certainly. And where are you going?",
            "To the airport, terminal two. My flight leaves at nine fifteen.",
            "A driver can be there in about ten minutes. Is that okay?",
            "Yes, that works. How much will the ride cost roughly?",
            "It is usually around forty dollars, depending on traffic.",
            "Fine. Can the driver help with two large suitcases?",
            "Of course, I will send a bigger car for you.",
            "Thank you. My name is Laura, by the way.",
            "Thank you, Laura. The driver will call you when he arrives.",
        ],
    ),
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    held_out = "--held-out" in args
    convs, folder = (HELD_OUT, "held") if held_out else (CONVS, "dev")
    mf.require_tools()
    mf.ROOT = Path(__file__).resolve().parent.parent / "out"
    for name, (v0, v1, stereo, lines) in convs.items():
        mf.VOICES["spk_0"] = mf.Voice(*v0)
        mf.VOICES["spk_1"] = mf.Voice(*v1)
        fx = mf.Fixture(
            name=name,
            path=f"{folder}/{name}.flac",
            lines=[(f"spk_{i % 2}", text) for i, text in enumerate(lines)],
            stereo=stereo,
        )
        (mf.ROOT / folder).mkdir(parents=True, exist_ok=True)
        meta = mf.build(fx)
        print(f"out/{folder}/{name}.flac {meta['channels']}ch {meta['duration_s']:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
