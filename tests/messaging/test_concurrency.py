"""Many writers on one conversation: seq stays 1..N without gaps or duplicates, no 500s."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from escalations.services import OPENED_TEXT
from messaging.models import Conversation, Message
from messaging.services import ESCALATED_ACKNOWLEDGEMENT
from tests.conftest import issue_access_token
from tests.factories import ConversationFactory
from tests.messages import post_message
from tests.races import failures, race

WRITERS = 32


@pytest.mark.django_db(transaction=True)
def test_32_concurrent_messages_into_one_conversation(settings: Any, customer: User) -> None:
    settings.RATE_LIMIT_MESSAGES = "1000/m"
    conversation = ConversationFactory(customer=customer)
    token = issue_access_token(customer)

    def writer(n: int) -> Any:
        client = Client(headers={"Authorization": f"Bearer {token}"})
        return post_message(client, customer, f"message number {n}", conversation.pk)

    results = race([partial(writer, n) for n in range(WRITERS)])

    assert [getattr(r, "status_code", r) for r in results] == [200] * WRITERS
    messages = list(Message.objects.filter(conversation=conversation).order_by("seq"))
    customer_texts = sorted(m.content for m in messages if m.role == "customer")
    assert customer_texts == sorted(f"message number {n}" for n in range(WRITERS))
    seqs = [m.seq for m in messages]
    assert seqs == list(range(1, len(messages) + 1))  # gap-free, no duplicates
    conversation.refresh_from_db()
    assert conversation.last_seq == len(messages)
    assert conversation.turn_count == WRITERS
    # Every agent reply directly follows its customer's message (written under one lock). Past
    # the agent's turn limit the conversation escalates; from then on the acknowledgement is
    # written once, right after the first customer message of the escalation.
    handed_off = [i for i, m in enumerate(messages) if m.content == OPENED_TEXT]
    for index, message in enumerate(messages):
        if message.role == "customer" and (not handed_off or index < handed_off[0]):
            assert messages[index + 1].role == "agent"
    acknowledgements = [i for i, m in enumerate(messages) if m.content == ESCALATED_ACKNOWLEDGEMENT]
    if handed_off and handed_off[0] + 1 < len(messages):
        assert acknowledgements == [handed_off[0] + 2]
        assert messages[handed_off[0] + 1].role == "customer"
    else:
        assert acknowledgements == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_new_conversations_do_not_interfere(settings: Any, customer: User) -> None:
    settings.RATE_LIMIT_MESSAGES = "1000/m"
    token = issue_access_token(customer)

    def writer(n: int) -> Any:
        client = Client(headers={"Authorization": f"Bearer {token}"})
        return post_message(client, customer, f"hello {n}")

    assert failures(race([partial(writer, n) for n in range(8)])) == []
    assert Conversation.objects.filter(customer=customer).count() == 8
    for conversation in Conversation.objects.all():
        assert list(conversation.messages.values_list("seq", flat=True)) == [1, 2]
