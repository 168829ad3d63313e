"""One operator rule (accounts.operators): active superusers, or active staff in the Operators
group. The predicate and the query agree on every kind of account, and every door asks it:
staff outside the group are refused on the staff REST routes (tests/escalations/test_api.py),
on /ws/escalations/, on the sockets and history of others' conversations, in the admin
(tests/escalations/test_admin.py), for live-channel tickets, display names and as assignees."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts import admin_tickets
from accounts.models import User
from accounts.operators import is_operator, operators
from accounts.profile import display_name_set
from core.errors import UnprocessableRequest
from escalations.inbox import assignee_get, colleagues_list
from escalations.services import operators_group_ensure
from tests.factories import ConversationFactory, MessageFactory, UserFactory
from tests.logins import signed_in
from tests.realtime.conftest import access_token_for, expect_close, make_communicator

KINDS: dict[str, dict[str, Any]] = {
    "customer": {},
    "customer-in-group": {"group": True},
    "staff": {"is_staff": True},
    "staff-in-group": {"is_staff": True, "group": True},
    "inactive-staff-in-group": {"is_staff": True, "is_active": False, "group": True},
    "superuser": {"is_staff": True, "is_superuser": True},
    "superuser-not-staff": {"is_superuser": True},
    "inactive-superuser": {"is_staff": True, "is_superuser": True, "is_active": False},
}
OPERATOR_KINDS = {"staff-in-group", "superuser", "superuser-not-staff"}


def _make(kind: str) -> User:
    flags = dict(KINDS[kind])
    in_group = flags.pop("group", False)
    user = UserFactory(username=kind, **flags)
    if in_group:
        user.groups.add(operators_group_ensure())
    return user


@pytest.mark.django_db
def test_the_predicate_and_the_query_agree_on_every_kind_of_account() -> None:
    users = {kind: _make(kind) for kind in KINDS}

    by_predicate = {
        kind for kind, user in users.items() if is_operator(User.objects.get(pk=user.pk))
    }
    by_query = {user.username for user in operators()}

    assert by_predicate == OPERATOR_KINDS
    assert by_query == OPERATOR_KINDS
    assert [user.username for user in colleagues_list()] == sorted(OPERATOR_KINDS)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_only_operators_can_be_assigned(kind: str) -> None:
    user = _make(kind)
    if kind in OPERATOR_KINDS:
        assert assignee_get(operator_id=user.pk) == user
    else:
        with pytest.raises(UnprocessableRequest):
            assignee_get(operator_id=user.pk)


@pytest.mark.django_db
def test_staff_outside_the_group_get_no_display_name_and_no_ticket() -> None:
    staff = _make("staff")
    with pytest.raises(PermissionError):
        display_name_set(user=staff, name="Stan")
    with pytest.raises(PermissionError):
        admin_tickets.admin_ticket_issue(user=staff, session_key="a-session")
    client = signed_in(staff)
    assert client.post("/admin/escalations/escalation/live-ticket/").status_code == 403


@pytest.mark.django_db
def test_staff_outside_the_group_read_no_one_elses_conversation_over_rest(
    customer: User, client_for: Callable[..., Client]
) -> None:
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation, role="customer", content="private")
    staff = client_for(_make("staff"))
    operator = client_for(_make("staff-in-group"))

    history = f"/api/v1/conversations/{conversation.pk}/history"
    theirs = f"/api/v1/customers/{customer.pk}/conversations"
    notes = f"/api/v1/escalations/{conversation.pk}/notes"
    assert [staff.get(url).status_code for url in (history, theirs, notes)] == [404, 403, 403]
    assert [operator.get(url).status_code for url in (history, theirs, notes)] == [200, 200, 200]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_staff_outside_the_group_are_refused_on_the_staff_sockets(customer: User) -> None:
    conversation = await sync_to_async(ConversationFactory)(customer=customer)
    staff = await sync_to_async(_make)("staff")
    token = await sync_to_async(access_token_for)(staff)
    for path, code in [
        ("/ws/escalations/", 4403),
        (f"/ws/conversations/{conversation.pk}/", 4404),
    ]:
        communicator = make_communicator(path)
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_json_to({"type": "auth", "token": token})
        assert await expect_close(communicator) == code, path
        await communicator.disconnect()
