"""The rules under the classifier: requests for a human always hand over, nothing else does on a
first message, anger escalates whatever the topic, off-topic is answered politely."""

import asyncio

import pytest

from messaging.agent.base import AgentReply, ConversationSnapshot
from messaging.agent.classifier import Prediction
from messaging.agent.rules import (
    EXPLICIT_HUMAN_CONFIDENCE,
    MODEL_HUMAN_MIN_PROBABILITY,
    UNKNOWN_CONFIDENCE,
    RuleBasedAgent,
)
from messaging.agent.signals import asks_for_a_human
from tests.messaging.agent.replies import ESCALATION, KB

UNKNOWN_ANSWERS = {a["topic"]: a["text"] for a in KB["intents"]["unknown"]["answers"]}
FIRST = ConversationSnapshot(id=None, customer_id=1, turn_count=0, recent_messages=())

HUMAN_REQUESTS = [
    "can I talk to someone real",
    "is there a person there",
    "get me your manager",
    "I want to speak with support staff",
    "let me talk to a human",
    "Can I speak to an actual human being?",
    "real person please",
    "human",
    "Agent!!",
    "representative pls",
    "operator",
    "connect me with a live agent",
    "transfer me to customer service",
    "put me through to someone in billing",
    "I'd rather talk to a human",
    "can somebody call me back",
    "please have someone phone me",
    "I don't want to talk to a bot",
    "stop the bot, I need a person",
    "is anyone real there?",
    "are there any humans working there",
    "I need to speak with a representative about my invoice",
    "escalate this please",
    "could I chat with a member of your team",
    "how do I reach a human",
    "let me speak to your supervisor",
    "i want a person not a bot",
    "I need human help",
    "can a real person look at my account",
    "THIS BOT IS USELESS, GET ME A HUMAN",
]

NOT_HUMAN_REQUESTS = [
    "hi bot",
    "hey robot, how are you",
    "are aliens real",
    "my video calls keep dropping",
    "the call quality is bad on android",
    "the person on the phone was rude",
    "my manager needs all our invoices",
    "can someone help me reset my password",
    "how do I add a team member to my workspace",
    "is anyone there?",
    "Hi, is someone available?",
    "search returns nothing for my query",
    "the agent field in the API response is empty",
    "thanks, bye",
    "gm",
    "real estate",
]


def _assert_handed_over(reply: AgentReply, intent: str, reason: str, reply_key: str) -> None:
    assert (reply.intent, reply.escalate, reply.escalation_reason) == (intent, True, reason)
    assert reply.text == ESCALATION[reply_key]


@pytest.mark.parametrize("message", HUMAN_REQUESTS)
def test_every_way_of_asking_for_a_human_hands_over(message):
    reply = RuleBasedAgent(max_turns=20).respond_now(FIRST, message)

    _assert_handed_over(reply, "human_request", "Customer asked for a human", "human_request")


@pytest.mark.parametrize("message", NOT_HUMAN_REQUESTS)
def test_a_first_message_that_asks_for_nobody_is_not_handed_over(message):
    reply = RuleBasedAgent(max_turns=20).respond_now(FIRST, message)

    assert reply.intent != "human_request"
    assert reply.escalate is False
    assert asks_for_a_human(message) is False


@pytest.mark.parametrize(
    "message",
    [
        "THIS IS RIDICULOUS, my app keeps crashing and nobody helps",
        "I WAS CHARGED TWICE!!! FIX IT",
        "you lost all my files, this is the worst company ever!!!",
        "I'm furious. Three refunds promised, none arrived. I'm calling my lawyer",
        # A customer who says they are angry, in plain words, on a topic and without shouting.
        "I'm so angry right now, the checkout double billed me again",
        "this is outrageous, my login never works",
        "I'm fed up, the app crashed again",
        "sick and tired of the sync failing every morning",
    ],
)
def test_an_angry_message_escalates_as_a_complaint_whatever_its_topic(message):
    reply = RuleBasedAgent(max_turns=20).respond_now(FIRST, message)

    _assert_handed_over(reply, "complaint", "Angry complaint", "angry")


@pytest.mark.parametrize(
    "message",
    ["How do I cancel my subscription!!", "my app crashed again!!", "I want to cancel my plan"],
)
def test_an_urgent_topic_message_is_answered_not_handed_over(message):
    # One anger marker ("!!") on a topic message is urgency, not anger: answered by the agent.
    reply = RuleBasedAgent(max_turns=20).respond_now(FIRST, message)

    assert reply.intent in {"billing", "technical"}
    assert reply.escalate is False


@pytest.mark.parametrize(
    "message", ["are aliens real", "what's the capital of Australia?", "tell me a joke"]
)
def test_off_topic_is_unknown_answered_with_what_the_agent_can_do(message):
    reply = RuleBasedAgent(max_turns=20).respond_now(FIRST, message)

    assert (reply.intent, reply.confidence, reply.escalate) == (
        "unknown",
        UNKNOWN_CONFIDENCE,
        False,
    )
    assert reply.text == UNKNOWN_ANSWERS["off_topic"]
    assert "account" in reply.text
    assert "billing" in reply.text


@pytest.mark.parametrize("message", ["I need help", "hmm", "asdfgh", "?"])
def test_an_unclear_first_message_asks_the_customer_to_rephrase(message):
    reply = RuleBasedAgent(max_turns=20).respond_now(FIRST, message)

    assert (reply.intent, reply.escalate) == ("unknown", False)
    assert reply.text == UNKNOWN_ANSWERS["clarify"]
    assert "Could you tell me a bit more" in reply.text


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("gm", "greeting"),
        ("G'day", "greeting"),
        ("hi bot", "greeting"),
        ("hola!", "greeting"),
        ("thanks that fixed it", "goodbye"),
        ("thank you for sorting out my invoice", "goodbye"),
        ("many thanks for the help with my account", "goodbye"),
        ("cheers mate 👍", "goodbye"),
        ("my search returns nothing", "technical"),
        ("video calls drop after a minute", "technical"),
        ("hi, i was charged twice", "billing"),
        ("thanks, but I still can't log in", "account"),
    ],
)
def test_social_and_mixed_messages(message, intent):
    reply = RuleBasedAgent(max_turns=20).respond_now(FIRST, message)

    assert (reply.intent, reply.escalate) == (intent, False)


class _FixedModel:
    """A stand-in for the trained model that gives one fixed reading."""

    def __init__(self, *ranked: tuple[str, float]) -> None:
        self.prediction = Prediction(ranked=ranked, known_features=5)

    def probabilities(self, text: str) -> Prediction:
        return self.prediction


_UNSURE = MODEL_HUMAN_MIN_PROBABILITY - 0.01


@pytest.mark.parametrize(
    ("ranked", "message", "expected"),
    [
        pytest.param(
            (("billing", 0.97), ("human_request", 0.03)),
            "human pls",
            {"intent": "human_request", "confidence": EXPLICIT_HUMAN_CONFIDENCE, "escalate": True},
            id="an-explicit-request-overrules-the-model",
        ),
        pytest.param(
            (("human_request", _UNSURE), ("technical", 1 - _UNSURE)),
            "video calls drop",
            {"intent": "technical", "escalate": False},
            id="the-models-unsure-human-request-gives-way-to-its-runner-up",
        ),
        pytest.param(
            (("human_request", MODEL_HUMAN_MIN_PROBABILITY), ("unknown", 0.4)),
            "could a colleague of yours take over",
            {"intent": "human_request", "escalate": True},
            id="the-models-sure-human-request-is-believed",
        ),
        pytest.param(
            (("billing", 0.3), ("account", 0.29)),
            "the thing",
            {"intent": "unknown", "confidence": UNKNOWN_CONFIDENCE, "escalate": False},
            id="an-unsure-model-makes-the-message-unknown",
        ),
    ],
)
def test_the_rules_over_the_models_reading(ranked, message, expected):
    agent = RuleBasedAgent(max_turns=20, model=_FixedModel(*ranked))  # type: ignore[arg-type]
    reply = asyncio.run(agent.respond(FIRST, message))

    assert {name: getattr(reply, name) for name in expected} == expected
