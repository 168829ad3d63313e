"""Fixtures for the escalation tests: a scripted agent, escalated conversations built with the
real services, and operators who belong to the Operators group."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from accounts.models import User
from escalations import services
from escalations.models import Escalation
from messaging.agent import get_agent
from messaging.models import Conversation, Message
from messaging.services import conversation_lock
from tests.factories import ConversationFactory, MessageFactory, OperatorFactory


@pytest.fixture
def scripted_agent(settings: Any) -> Iterator[None]:
    settings.AGENT_BACKEND = "tests.escalations.agents.ScriptedAgent"
    get_agent.cache_clear()
    yield
    get_agent.cache_clear()


def open_escalation(
    conversation: Conversation, reason: str = "Customer asked for a human"
) -> Escalation:
    """Hand a conversation to operators through the real service (as message_send does)."""
    with transaction.atomic():
        locked = conversation_lock(conversation_id=conversation.pk)
        assert locked is not None
        escalation = services.escalation_open(
            conversation=locked, reason=reason, intent="human_request", confidence=0.9
        )
    conversation.refresh_from_db()
    return escalation


@pytest.fixture
def escalated(customer: User) -> Callable[..., Escalation]:
    """escalated(customer=None) → an open escalation of a conversation with one customer turn
    and the agent's answer (seq 1, 2), plus the system hand-off message (seq 3)."""

    def make(owner: User | None = None) -> Escalation:
        conversation = ConversationFactory(customer=owner or customer)
        for role, content in [
            (Message.Role.CUSTOMER, "I want to talk to a human"),
            (Message.Role.AGENT, "Let me find a colleague for you."),
        ]:
            MessageFactory(
                conversation=conversation,
                role=role,
                content=content,
                intent="human_request",
                confidence=0.9,
            )
        return open_escalation(conversation)

    return make


@pytest.fixture
def escalation(escalated: Callable[..., Escalation]) -> Escalation:
    """The customer's conversation, escalated (`escalated()`): what most tests act on. Named
    last among a test's fixtures, it is made after them, as a call in the test's body was."""
    return escalated()


@pytest.fixture
def resolved(escalated: Callable[..., Escalation], operator: User) -> Callable[..., Escalation]:
    """resolved(owner=None) → an escalation that an operator resolved."""

    def make(owner: User | None = None) -> Escalation:
        handed_off = escalated(owner)
        return services.escalation_resolve(
            conversation_id=handed_off.conversation_id, actor=operator, notes="done"
        )

    return make


@pytest.fixture
def operators_group(db: Any) -> Any:
    # Transactional tests flush the database (the migration's group with it), so the group is
    # ensured here rather than assumed.
    return services.operators_group_ensure()


@pytest.fixture
def admin_operator(operator: User, operators_group: Any) -> User:
    operator.groups.add(operators_group)
    return operator


@pytest.fixture
def operator_admin_client(client: Client, admin_operator: User) -> Client:
    """pytest-django's client, signed in to the admin as an operator (a session cookie)."""
    client.force_login(admin_operator)
    return client


@pytest.fixture
def second_operator(operators_group: Any) -> User:
    user = OperatorFactory(username="oscar")
    user.groups.add(operators_group)
    return user


Committed = Callable[[Callable[[], Any]], Any]


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Committed:
    """committed(change) → change()'s result, its on-commit work (pushes, assignment) run as
    after a real commit. (A test's transaction never commits: without this nothing is pushed.)"""

    def run(change: Callable[[], Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return change()

    return run


def named(user: User, display_name: str) -> User:
    """The user, shown to customers under `display_name` (saved)."""
    user.display_name = display_name
    user.save(update_fields=["display_name"])
    return user


def staff_post(client: Client, conversation_id: int, action: str, body: Any = None) -> Any:
    """`POST /escalations/{conversation_id}/{action}` (assign, reply, resolve, ...) as whoever
    `client` signs in: with a JSON body when there is one, with none at all otherwise."""
    path = f"/api/v1/escalations/{conversation_id}/{action}"
    if body is None:
        return client.post(path)
    return client.post(path, body, content_type="application/json")


def transcript_of(conversation_id: int) -> list[tuple[int, str, str]]:
    return list(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("seq")
        .values_list("seq", "role", "content")
    )
