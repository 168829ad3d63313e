"""Fixtures for routing, presence and SLA tests: operators who are online (a presence lease, as
an open inbox socket holds), auto-assignment switched on, escalations opened through the real
hand-off service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from accounts.models import User
from escalations import presence
from escalations.models import Escalation, OperatorProfile
from messaging.models import Message
from tests.escalations.conftest import (  # noqa: F401 - fixtures re-exported for this package
    admin_operator,
    committed,
    escalated,
    open_escalation,
    operator_admin_client,
    operators_group,
    scripted_agent,
    second_operator,
)
from tests.factories import ConversationFactory, OperatorFactory
from tests.inbox.conftest import recorded_events  # noqa: F401 - fixture re-exported
from tests.realtime.conftest import _fresh_channel_layer  # noqa: F401 - autouse, per test


def online(user: User, socket_id: str = "test-socket") -> User:
    """The user holds a presence lease, as an open /ws/escalations/ socket would."""
    presence.lease_renew(user_id=user.pk, socket_id=socket_id)
    return user


@pytest.fixture
def auto(settings: Any) -> None:
    settings.ASSIGNMENT_MODE = "auto"


@pytest.fixture
def make_operator(operators_group: Any) -> Callable[..., User]:  # noqa: F811
    """make_operator(name, capacity=None, online=True) → an operator in the group."""

    def make(name: str, *, capacity: int | None = None, is_online: bool = True) -> User:
        user = OperatorFactory(username=name.lower(), display_name=name)
        if capacity is not None:
            OperatorProfile.objects.create(user=user, capacity=capacity)
        return online(user, f"{name}-socket") if is_online else user

    return make


@pytest.fixture
def new_escalation(customer: User) -> Callable[..., Escalation]:  # noqa: F811 - the fixture
    """new_escalation(owner=None) → an escalation opened through escalations.services (the
    agent's hand-off), with the auto-assignment that may come with it."""

    def make(owner: User | None = None) -> Escalation:
        conversation = ConversationFactory(customer=owner or customer)
        escalation = open_escalation(conversation)
        escalation.refresh_from_db()
        return escalation

    return make


@pytest.fixture
def escalation(new_escalation: Callable[..., Escalation]) -> Escalation:  # noqa: F811
    """The customer's escalation, opened through the hand-off (`new_escalation()`) after the
    test's other fixtures (name it last): online operators, `auto` and recorded events first."""
    return new_escalation()


def joined_notices(conversation_id: int) -> list[str]:
    return list(
        Message.objects.filter(
            conversation_id=conversation_id,
            role=Message.Role.SYSTEM,
            content__endswith="joined the conversation.",
        ).values_list("content", flat=True)
    )
