"""Turn annotations: risk tags on lemmas and phrases, questions, actions, corrections, keywords."""

from __future__ import annotations

import pytest

from services.semantic.annotate import Annotator
from services.semantic.lexicon import lemmas
from services.semantic.settings import SemanticSettings
from services.semantic.turns import OpenTurn, SegmentPart
from shared.schemas import SemanticAnnotation, Turn

ANNOTATOR = Annotator(SemanticSettings().risk_terms(), max_keywords=5)


def annotate(
    *texts: str, speaker: str = "spk_0", earlier: list[Turn] | None = None
) -> SemanticAnnotation:
    turn = OpenTurn(id=f"turn:{speaker}-x", speaker_id=speaker)
    for i, text in enumerate(texts):
        turn.segments.append(SegmentPart(f"seg-{i}", speaker, i * 3.0, i * 3.0 + 2.5, text))
    return ANNOTATOR.annotate(
        turn.snapshot(final=True), earlier or [], context_size=1, ledger_before=0
    )


def earlier_turn(text: str, speaker: str = "spk_0", tid: str = "turn:old") -> Turn:
    return Turn(id=tid, speaker_id=speaker, start=0.0, end=1.0, text=text, partial=False)


@pytest.mark.parametrize("form", ["cancel", "cancelling", "cancellation", "cancelled", "cancels"])
def test_every_form_of_cancel_shares_its_lemma(form: str) -> None:
    assert not lemmas("cancel").isdisjoint(lemmas(form))
    assert annotate(f"I am thinking about the {form} of my plan.").risk_tags == ["churn_risk"]


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("This is unacceptable.", ["escalation"]),
        ("I want to speak to your manager right now.", ["escalation"]),
        ("Let me talk to a supervisor.", ["escalation"]),
        ("I'm cancelling my subscription today.", ["churn_risk"]),
        ("We are switching to a competitor.", ["churn_risk"]),
        ("The price went up again.", ["pricing"]),
        ("Your pricing is way too expensive.", ["pricing"]),
        ("I was charged twice and want a refund.", ["pricing"]),
        (
            "That's ridiculous, the fees are too high, I'll cancel.",
            ["escalation", "churn_risk", "pricing"],
        ),
    ],
)
def test_planted_risk_turns_are_tagged(text: str, tags: list[str]) -> None:
    assert annotate(text).risk_tags == tags


@pytest.mark.parametrize(
    "text",
    [
        "Hello, support desk, how can I help?",
        "It went to our main office.",
        "The view from the office is priceless.",
        "Our account manager sent the report.",
        "Could you read me the account number on your latest bill?",
        "I need to speak to my colleague first.",
        "The weather is nice today.",
    ],
)
def test_neutral_turns_carry_no_risk_tag(text: str) -> None:
    assert annotate(text).risk_tags == []


def test_risk_terms_say_why_and_are_configurable() -> None:
    assert annotate("The prices are too high.").risk_terms == {"pricing": ["price"]}
    custom = Annotator({"legal": ["data breach"]}, max_keywords=5)
    turn = OpenTurn(id="turn:t", speaker_id="spk_0")
    turn.segments.append(SegmentPart("s", "spk_0", 0.0, 1.0, "There was a data breaches leak."))
    result = custom.annotate(turn.snapshot(final=True), [], context_size=0, ledger_before=0)
    assert result.risk_tags == ["legal"]


@pytest.mark.parametrize(
    ("texts", "count"),
    [
        (("Can you review the proposal?",), 1),
        (("can you review the proposal",), 1),  # no punctuation from the ASR
        (("Which account was it sent to",), 1),
        (("What is your account number. And how long have you been a customer.",), 2),
        (("Could you read me the account number on your latest bill?",), 1),
        (("Okay, is that the right address?",), 1),
        (("When I called yesterday, nobody answered.",), 0),
        (("What I need is a refund.",), 0),
        (("Will do.", "I sent it to you."), 0),
        (("Sure.", "Do you have the invoice?", "Is it correct"), 2),
    ],
)
def test_questions_are_counted_once_per_sentence(texts: tuple[str, ...], count: int) -> None:
    result = annotate(*texts)
    assert result.question_count == count
    assert len(result.questions) == count


@pytest.mark.parametrize(
    ("text", "action", "pattern"),
    [
        ("I will send the invoice today.", "I will send the invoice today", "i_will"),
        ("Sure, I'll do it by Friday.", "I'll do it by Friday", "i_will"),
        ("OK, let me check your account.", "let me check your account", "let_me"),
        ("We'll refund the duplicate charge.", "We'll refund the duplicate charge", "we_will"),
        ("I'm going to escalate this ticket.", "I'm going to escalate this ticket", "going_to"),
        ("We will call you back tomorrow.", "We will call you back tomorrow", "we_will"),
        ("I'll send it over, okay?", "I'll send it over, okay", "i_will"),
    ],
)
def test_commitments_are_actions_of_their_speaker(text: str, action: str, pattern: str) -> None:
    result = annotate(text, speaker="spk_1")
    assert [(a.text, a.pattern, a.speaker_id, a.commitment) for a in result.actions] == [
        (action, pattern, "spk_1", True)
    ]
    assert result.commitments == [action]
    assert result.commitment_ledger_size == 1


def test_each_commitment_of_a_compound_sentence_is_an_action() -> None:
    # support_call.flac: two promises joined by "and" are two action items, each with
    # its own text, not one action that swallows the second.
    result = annotate(
        "We'll refund the charge, and I will send you the confirmation email.", speaker="spk_0"
    )
    assert [(a.text, a.pattern, a.speaker_id) for a in result.actions] == [
        ("We'll refund the charge", "we_will", "spk_0"),
        ("I will send you the confirmation email", "i_will", "spk_0"),
    ]
    assert result.commitment_ledger_size == 2


@pytest.mark.parametrize(
    ("text", "actions"),
    [
        # tiny.en's streaming text of support_call.flac's "We'll refund the charge, and I
        # will send you the confirmation email": the "'ll" is gone.
        (
            "We refund the charge and I will send you the confirmation email.",
            [
                ("We refund the charge", "first_person"),
                ("I will send you the confirmation email", "i_will"),
            ],
        ),
        ("Okay, I send you the link now.", [("I send you the link now", "first_person")]),
    ],
)
def test_a_promise_whose_will_the_asr_dropped_is_still_a_commitment(
    text: str, actions: list[tuple[str, str]]
) -> None:
    result = annotate(text, speaker="spk_0")
    assert [(a.text, a.pattern) for a in result.actions] == actions
    assert all(a.commitment and a.speaker_id == "spk_0" for a in result.actions)


@pytest.mark.parametrize(
    "text",
    [
        "When I call, nobody answers.",
        "If we refund the charge, the invoice changes.",
        "Do we refund the charge?",
        "We make it easy to switch plans.",
    ],
)
def test_a_first_person_verb_inside_a_clause_or_question_is_no_commitment(text: str) -> None:
    assert annotate(text).commitments == []


@pytest.mark.parametrize(
    "text",
    [
        "Will you send me the invoice?",
        "will you send me the invoice",
        "Do you think I'll get a refund?",
        "Let me know if that works.",
        "I will not pay that.",
        "The invoice went out yesterday.",
    ],
)
def test_questions_and_statements_are_not_commitments(text: str) -> None:
    assert annotate(text).commitments == []


def test_requests_are_actions_but_not_commitments() -> None:
    result = annotate("Please remove it and send me a new copy.", speaker="spk_1")
    assert [(a.pattern, a.speaker_id, a.commitment) for a in result.actions] == [
        ("request", "spk_1", False)
    ]
    assert result.commitments == []


def test_an_action_names_the_segments_it_was_said_in() -> None:
    result = annotate("Thanks for waiting.", "I will email you", "the new contract.")
    assert [a.segment_ids for a in result.actions] == [["seg-1", "seg-2"]]


def test_a_correction_points_at_the_same_speakers_earlier_turn() -> None:
    earlier = [earlier_turn("It went to our main office.", tid="turn:a")]
    result = annotate("Actually, it went to our billing office.", earlier=earlier)
    assert result.corrected_turn_ids == ["turn:a"]
    assert result.corrections == ["Actually, it went to our billing office."]


def test_i_meant_corrects_a_number() -> None:
    earlier = [earlier_turn("My account number is 4 5 6 7.", tid="turn:n")]
    result = annotate("Sorry, I meant 4 5 6 8.", earlier=earlier)
    assert result.corrected_turn_ids == ["turn:n"]


def test_a_turn_is_never_a_correction_of_itself_or_of_unrelated_talk() -> None:
    # Marker and repeated content, but nothing earlier to correct.
    assert (
        annotate("It went to the main office. Actually, it went to the billing office.").corrections
        == []
    )
    earlier = [earlier_turn("I am calling about an invoice.", tid="turn:i")]
    assert (
        annotate(
            "Actually, I need help with my invoice and my password.", earlier=earlier
        ).corrections
        == []
    )
    assert annotate("Sorry, I didn't catch that.", earlier=earlier).corrections == []


def test_keywords_are_content_phrases_at_most_max_keywords() -> None:
    result = annotate(
        "I see a duplicate charge on that invoice. The duplicate charge appeared twice, "
        "once in March and once in April, on the premium support plan."
    )
    assert "duplicate charge" in result.keywords[0]
    assert 0 < len(result.keywords) <= 5
    assert not {"the", "on", "that", "and"} & set(result.keywords)
    assert (
        result.keywords
        == annotate(
            "I see a duplicate charge on that invoice. The duplicate charge appeared twice, "
            "once in March and once in April, on the premium support plan."
        ).keywords
    )
