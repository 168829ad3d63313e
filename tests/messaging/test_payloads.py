"""A message's client payload (websocket `message` frames, the `message.created` domain event)
built from plain values (messaging.schemas.message_item / message_payload) is the dict the
pydantic path built — `client_json(MessageOut.from_orm(message))` — value for value, type for
type and key for key in the same order, so the JSON sent is byte-for-byte the same."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import transaction

from accounts.models import User
from accounts.sockets import frame_text
from core.schemas import client_json
from integrations.models import WebhookEndpoint, WebhookEvent
from messaging import fastpath, services
from messaging.agent import AgentReply
from messaging.events import MESSAGE_CREATED
from messaging.models import Conversation, Message
from messaging.schemas import MessageOut, message_payload
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def legacy_payload(message: Any) -> dict[str, Any]:
    """message_payload as it was: a MessageOut per message, JSON-encoded and decoded."""
    return client_json(MessageOut.from_orm(message))


EVENT_ID = re.compile(r"msg_[0-9a-f]{32}")  # integrations.models.new_event_id's shape


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
    assert_same_payload(message_payload(written), legacy_payload(written))


@pytest.mark.parametrize("values", VALUES)
@pytest.mark.parametrize(
    "role", [Message.Role.CUSTOMER, Message.Role.AGENT, Message.Role.SYSTEM, Message.Role.OPERATOR]
)
def test_unsaved_model_payload_equals_messageout(
    customer: User, role: Message.Role, values: dict[str, Any]
) -> None:
    # As services.conversation_append builds them: the role as the enum, not yet read back.
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
    assert_same_payload(new, legacy_payload(message))
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
        assert_same_payload(message_payload(message), legacy_payload(message))


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
def test_fast_turn_pushes_and_events_equal_the_messageout_path(
    customer: User, reply: AgentReply, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What services._fast_turn publishes and records for a turn: the same dicts as
    MessageOut built them from the written messages, and as it builds them from the rows. The
    events are read back from the webhook outbox, where the turn's own statement writes them
    on PostgreSQL (messaging.events.domain_event_inserts) and its transaction on SQLite."""
    conversation = ConversationFactory(customer=customer)
    WebhookEndpoint.objects.create(
        url="https://hooks.example.com/in", events=["message.created"], secret="whsec_x"
    )
    written: list[Any] = []
    pushed: list[Any] = []
    turn_write = fastpath.turn_write

    def spy(**kwargs: Any) -> Any:
        result = turn_write(**kwargs)
        written.append(result)
        return result

    monkeypatch.setattr(fastpath, "turn_write", spy)
    monkeypatch.setattr(services, "publish_on_commit", pushed.extend)
    with transaction.atomic():
        result = services._fast_turn(
            conversation_id=conversation.pk,
            customer=customer,
            text='Straße? 日本 😀 "quoted"',
            reply=reply,
            agent_name="rule_based",
            claim=None,
        )
    assert result is not None
    (turn,) = written
    messages = (turn.customer_message, turn.answer)
    legacy = [legacy_payload(m) for m in messages]
    rows = [Message.objects.get(pk=m.id) for m in messages]
    assert [m.role for m in rows] == ["customer", "agent"]

    # One push for the turn, both messages' frames encoded in it, byte for byte what a
    # socket sent when it encoded the MessageOut payload itself.
    ((group, event),) = pushed
    assert group == f"conversation.{conversation.pk}"
    assert event["type"] == "messages.created"
    assert [item["seq"] for item in event["messages"]] == [1, 2]
    for item, old, row in zip(event["messages"], legacy, rows, strict=True):
        assert item["frame"] == frame_text({"type": "message", "message": old})
        frame = json.loads(item["frame"])
        assert frame["type"] == "message"
        assert_same_payload(frame["message"], old)
        assert_same_payload(frame["message"], legacy_payload(row))
    recorded = list(WebhookEvent.objects.order_by("id"))
    assert [event.type for event in recorded] == [MESSAGE_CREATED] * 2
    for event, old in zip(recorded, legacy, strict=True):
        expected = {**old, "conversation_id": conversation.pk, "customer_id": customer.pk}
        # jsonb keeps no key order (PostgreSQL): the same keys, values and value types.
        assert event.payload == expected
        assert {k: type(v) for k, v in event.payload.items()} == {
            k: type(v) for k, v in expected.items()
        }
        assert event.customer_id == customer.pk
        assert EVENT_ID.fullmatch(event.event_id)
    assert Conversation.objects.get(pk=conversation.pk).last_seq == 2
