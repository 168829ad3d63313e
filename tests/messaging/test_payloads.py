"""A message's client payload (websocket `message` frames, the `message.created` domain event)
read from MessageOut without validating (messaging.schemas.message_item / message_payload) is
the dict the validating path gives — `client_json(MessageOut.from_orm(message))` — value for
value, type for type and key for key in the same order, so the JSON sent is byte-for-byte the
same."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from accounts.models import User
from accounts.sockets import frame_text
from core.schemas import client_json
from integrations.models import WebhookEndpoint, WebhookEvent
from messaging import fastpath
from messaging.agent import AgentReply
from messaging.events import MESSAGE_CREATED
from messaging.models import Conversation, Message
from messaging.schemas import MessageOut, message_payload
from tests.factories import ConversationFactory, MessageFactory
from tests.pushes import Pushes

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def validated_payload(message: Any) -> dict[str, Any]:
    """The message as its schema gives it: MessageOut validated, JSON-encoded and decoded."""
    return client_json(MessageOut.from_orm(message))


EVENT_ID = re.compile(r"msg_[0-9a-f]{32}")  # messaging.events.new_event_id's shape


def assert_same_payload(new: dict[str, Any], old: dict[str, Any]) -> None:
    assert new == old
    assert list(new) == list(old)
    assert [type(v) for v in new.values()] == [type(v) for v in old.values()]
    assert json.dumps(new) == json.dumps(old)
    assert json.dumps(new, ensure_ascii=False) == json.dumps(old, ensure_ascii=False)


# Intent/confidence null and set (an int confidence, a float whose repr is long), non-ASCII,
# emoji, escapes; created_at with and without microseconds, and whole milliseconds.
VALUES: list[dict[str, Any]] = [
    {"content": "Grüße — naïve façade, 日本語", "intent": None, "confidence": None},
    {"content": "Emoji 😀👍🏽 👨‍👩‍👧 🇺🇦", "intent": "billing", "confidence": 0.87},
    {"content": 'quotes " \\ \n\t </script> \u2028 \x7f', "intent": "account", "confidence": 1},
    {"content": "", "intent": "other", "confidence": 0.1 + 0.2},
    {
        "content": "x",
        "intent": "greeting",
        "confidence": 0.0,
        "created_at": AT.replace(microsecond=0),
    },
    {
        "content": "y",
        "intent": "other",
        "confidence": 1e-07,
        "created_at": AT.replace(microsecond=5000),
    },
]


@pytest.mark.parametrize("values", VALUES)
@pytest.mark.parametrize("role", ["customer", "agent"])
def test_written_message_payload_equals_messageout(role: str, values: dict[str, Any]) -> None:
    written = fastpath.WrittenMessage(
        id=41,
        seq=7,
        role=role,
        content=values["content"],
        intent=values["intent"],
        confidence=values["confidence"],
        created_at=values.get("created_at", AT),
        metadata={} if role == "customer" else {"source": "rules", "author_name": "not sent"},
    )
    assert_same_payload(message_payload(written), validated_payload(written))


@pytest.mark.parametrize("values", VALUES)
@pytest.mark.parametrize(
    "role", [Message.Role.CUSTOMER, Message.Role.AGENT, Message.Role.SYSTEM, Message.Role.OPERATOR]
)
def test_unsaved_model_payload_equals_messageout(
    customer: User, role: Message.Role, values: dict[str, Any]
) -> None:
    # A model instance built in code: the role as the enum, not yet read back.
    message = Message(
        id=9,
        conversation=ConversationFactory(customer=customer),
        seq=3,
        role=role,
        content=values["content"],
        intent=values["intent"],
        confidence=values["confidence"],
        metadata={"author_name": "Zoë 🎧 O'Brien"},
        created_at=values.get("created_at", AT),
    )
    new = message_payload(message)
    assert_same_payload(new, validated_payload(message))
    assert type(new["role"]) is str


@pytest.mark.parametrize(
    "metadata", [{}, {"author_name": "Zoë 🎧"}, {"author_name": 7}, {"author_name": None}]
)
@pytest.mark.parametrize("role", ["customer", "agent", "operator", "system"])
def test_stored_message_payload_equals_messageout(
    customer: User, role: str, metadata: dict[str, Any]
) -> None:
    conversation = ConversationFactory(customer=customer)
    for values in VALUES:
        MessageFactory(
            conversation=conversation,
            role=role,
            metadata=metadata,
            **{"created_at": AT, **values},
        )
    stored = list(Message.objects.filter(conversation=conversation).order_by("seq"))
    assert len(stored) == len(VALUES)
    for message in stored:
        assert_same_payload(message_payload(message), validated_payload(message))


REPLIES = [
    AgentReply(
        text="You can reset it 🔑 — Grüße", intent="account", confidence=0.87, escalate=False
    ),
    AgentReply(
        text="ok", intent="other", confidence=1, escalate=False, metadata={"fallback": True}
    ),
    AgentReply(
        text="float", intent="billing", confidence=0.1 + 0.2, escalate=False, metadata={"n": 1}
    ),
    # An agent's reply always has an intent and a confidence (AgentReply); null ones are
    # covered above, for the messages of the general path (system, operator).
]


@pytest.mark.parametrize("reply", REPLIES)
def test_a_turns_pushes_and_events_are_messageouts(
    customer: User, reply: AgentReply, pushed: Pushes, django_capture_on_commit_callbacks: Any
) -> None:
    """What the writer publishes and records for a turn: the same dicts as MessageOut
    validated from the written messages and from the rows read back. The events are read
    back from the webhook outbox, where the turn's own statement writes them on PostgreSQL
    (messaging.events.domain_event_inserts) and its transaction on SQLite."""
    conversation = ConversationFactory(customer=customer)
    WebhookEndpoint.objects.create(
        url="https://hooks.example.com/in", events=["message.created"], secret="whsec_x"
    )
    with django_capture_on_commit_callbacks(execute=True):
        turn = fastpath.turn_write(
            conversation_id=conversation.pk,
            customer_id=customer.pk,
            text='Straße? 日本 😀 "quoted"',
            reply_text=reply.text,
            intent=reply.intent,
            confidence=reply.confidence,
            metadata=dict(reply.metadata),
        )
    assert turn is not None
    messages = (turn.customer_message, turn.answer)
    validated = [validated_payload(m) for m in messages]
    rows = [Message.objects.get(pk=m.id) for m in messages]
    assert [m.role for m in rows] == ["customer", "agent"]

    # One push for the turn, both messages' frames encoded in it, byte for byte what a
    # socket would send of the validated payload.
    ((group, event),) = pushed
    assert group == f"conversation.{conversation.pk}"
    assert event["type"] == "messages.created"
    assert [item["seq"] for item in event["messages"]] == [1, 2]
    for item, expected, row in zip(event["messages"], validated, rows, strict=True):
        assert item["frame"] == frame_text({"type": "message", "message": expected})
        frame = json.loads(item["frame"])
        assert frame["type"] == "message"
        assert_same_payload(frame["message"], expected)
        assert_same_payload(frame["message"], validated_payload(row))
    recorded = list(WebhookEvent.objects.order_by("id"))
    assert [event.type for event in recorded] == [MESSAGE_CREATED] * 2
    for event, expected in zip(recorded, validated, strict=True):
        data = {**expected, "conversation_id": conversation.pk, "customer_id": customer.pk}
        # jsonb keeps no key order (PostgreSQL): the same keys, values and value types.
        assert event.payload == data
        assert {k: type(v) for k, v in event.payload.items()} == {
            k: type(v) for k, v in data.items()
        }
        assert event.customer_id == customer.pk
        assert EVENT_ID.fullmatch(event.event_id)
    assert Conversation.objects.get(pk=conversation.pk).last_seq == 2
