"""The message route reads the agent's context in the token lookup's statement
(accounts.fastauth.ReadAlong, messaging.fastpath.agent_context_along): one round trip for both.

What must hold: the context read that way is the one `agent_context` reads; the user, the
deny-lists and every refusal are exactly those of the plain lookup; the turn uses a read only
for the customer and conversation it was made for; a token refused for its user's state writes
nothing whatever conversation the body names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import fastauth
from accounts.models import RevokedAccessToken, User
from core.errors import NotFound
from messaging import fastpath, services
from messaging.models import MAX_ID, Conversation
from tests.conftest import issue_access_token
from tests.factories import ConversationFactory, MessageFactory
from tests.messages import post_message
from tests.snapshots import database_state

pytestmark = pytest.mark.django_db


def _conversation(customer: User, messages: int, status: str = "active") -> Conversation:
    conversation = ConversationFactory(
        customer=customer, status=status, last_seq=messages, agent_turns=messages // 2
    )
    for seq in range(1, messages + 1):
        MessageFactory(
            conversation=conversation,
            seq=seq,
            role="agent" if seq % 2 == 0 else "customer",
            content=f"message {seq}" if seq % 3 else "",
            intent="account" if seq % 3 == 0 else None,
            confidence=0.25 if seq % 3 == 0 else None,
        )
    return conversation


def _read_ahead(user_id: int, customer_id: int, conversation_id: int) -> tuple[Any, Any]:
    """The token lookup of `user_id` carrying the context read of (customer, conversation):
    (the lookup's result, what context_read_of makes of the read)."""
    along = fastpath.agent_context_along(customer_id=customer_id, conversation_id=conversation_id)
    assert along is not None
    found = fastauth.user_with_revocation(user_id=user_id, jti="never-revoked", along=along)
    return found, fastpath.context_read_of(along)


# --- the read itself -------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["active", "escalated", "resolved"])
@pytest.mark.parametrize("messages", [0, 1, 10, 11, 25])
def test_read_ahead_is_agent_context(customer: User, messages: int, status: str) -> None:
    conversation = _conversation(customer, messages, status)
    expected = fastpath.agent_context(customer_id=customer.pk, conversation_id=conversation.pk)
    assert expected is not None

    with CaptureQueriesContext(connection) as captured:
        found, read = _read_ahead(customer.pk, customer.pk, conversation.pk)

    assert len(captured.captured_queries) == 1
    assert read == fastpath.ContextRead(
        customer_id=customer.pk, conversation_id=conversation.pk, context=expected
    )
    # The lookup's own result is the plain lookup's.
    assert found is not None
    plain = fastauth.user_with_revocation(user_id=customer.pk, jti="never-revoked")
    assert plain is not None
    assert found[1] is plain[1] is False
    for field in User._meta.concrete_fields:
        assert getattr(found[0], field.attname) == getattr(plain[0], field.attname), field.name


def test_someone_elses_conversation_reads_as_not_found(
    customer: User, other_customer: User
) -> None:
    theirs = _conversation(other_customer, 3)
    found, read = _read_ahead(customer.pk, customer.pk, theirs.pk)
    assert found is not None
    assert found[0].pk == customer.pk
    assert read == fastpath.ContextRead(
        customer_id=customer.pk, conversation_id=theirs.pk, context=None
    )


def test_a_missing_conversation_reads_as_not_found(customer: User) -> None:
    found, read = _read_ahead(customer.pk, customer.pk, MAX_ID)
    assert found is not None
    assert read is not None
    assert read.context is None


def test_a_missing_user_leaves_nothing_read(customer: User) -> None:
    conversation = _conversation(customer, 2)
    found, read = _read_ahead(MAX_ID, customer.pk, conversation.pk)
    assert found is None
    assert read is None  # the turn would read for itself (it never gets there: 401)


def test_the_lookup_still_sees_the_deny_list(customer: User) -> None:
    conversation = _conversation(customer, 2)
    RevokedAccessToken.objects.create(
        user=customer, jti="gone", expires_at=timezone.now() + timedelta(hours=1)
    )
    along = fastpath.agent_context_along(customer_id=customer.pk, conversation_id=conversation.pk)
    found = fastauth.user_with_revocation(user_id=customer.pk, jti="gone", along=along)
    assert found is not None
    assert found[1] is True


@pytest.mark.parametrize("conversation_id", [0, -1, MAX_ID + 1])
def test_no_read_for_an_impossible_id(customer: User, conversation_id: int) -> None:
    assert (
        fastpath.agent_context_along(customer_id=customer.pk, conversation_id=conversation_id)
        is None
    )


def test_only_a_context_read_that_ran_is_taken(customer: User) -> None:
    assert fastpath.context_read_of(None) is None
    conversation = _conversation(customer, 1)
    along = fastpath.agent_context_along(customer_id=customer.pk, conversation_id=conversation.pk)
    assert fastpath.context_read_of(along) is None  # not run yet
    other = fastauth.ReadAlong(sql="SELECT 1 AS context_seq", params=(), order_by="context_seq")
    other.rows = [(1,)]
    assert fastpath.context_read_of(other) is None


# --- the turn uses a read only for what it was made for ----------------------------------------


def test_the_turn_uses_the_read_made_for_it(customer: User) -> None:
    conversation = _conversation(customer, 2)
    # A read that says "not yours": the turn believes it (404) without reading again.
    read = fastpath.ContextRead(
        customer_id=customer.pk, conversation_id=conversation.pk, context=None
    )
    before = database_state()
    with CaptureQueriesContext(connection) as captured, pytest.raises(NotFound):
        services.message_send(
            customer=customer, conversation_id=conversation.pk, text="hi", context_read=read
        )
    assert captured.captured_queries == []
    assert database_state() == before


@pytest.mark.parametrize(
    "made_for",
    [
        pytest.param(lambda c, other, conv: (other.pk, conv.pk), id="another-customer"),
        pytest.param(lambda c, other, conv: (c.pk, conv.pk + 1), id="another-conversation"),
    ],
)
def test_a_read_made_for_something_else_is_not_used(
    customer: User,
    other_customer: User,
    made_for: Callable[[User, User, Conversation], tuple[int, int]],
) -> None:
    conversation = _conversation(customer, 2)
    customer_id, conversation_id = made_for(customer, other_customer, conversation)
    read = fastpath.ContextRead(
        customer_id=customer_id, conversation_id=conversation_id, context=None
    )
    result = services.message_send(
        customer=customer, conversation_id=conversation.pk, text="hi", context_read=read
    )
    assert result.conversation_id == conversation.pk  # read for itself: found, answered
    assert Conversation.objects.get(pk=conversation.pk).last_seq == 4


# --- over REST ---------------------------------------------------------------------------------


def _refuse_by_user_state(how: str, customer: User, token: str) -> None:
    if how == "inactive":
        customer.is_active = False
        customer.save(update_fields=["is_active"])
    elif how == "revoked":
        assert (
            Client(headers={"Authorization": f"Bearer {token}"})
            .post("/api/v1/auth/revoke")
            .status_code
            == 204
        )
    elif how == "password-changed":
        customer.set_password("a-whole-new-passphrase")
        customer.save()
    elif how == "deleted":
        customer.delete()


@pytest.mark.parametrize("how", ["inactive", "revoked", "password-changed", "deleted"])
def test_a_token_refused_for_its_user_writes_nothing(customer: User, how: str) -> None:
    conversation = _conversation(customer, 2)
    token = issue_access_token(customer)
    _refuse_by_user_state(how, customer, token)
    before = database_state()

    response = post_message(
        Client(headers={"Authorization": f"Bearer {token}"}), customer, "hi", conversation.pk
    )

    assert response.status_code == 401, response.content
    assert database_state() == before


def test_another_customers_conversation_is_404_and_unchanged(
    customer: User, other_customer: User, customer_client: Client
) -> None:
    theirs = _conversation(other_customer, 2)
    before = database_state()
    response = post_message(customer_client, customer, "hi", theirs.pk)
    assert response.status_code == 404
    assert database_state() == before


@pytest.mark.parametrize(
    "conversation_id",
    [
        pytest.param(True, id="a-bool"),
        pytest.param("1", id="a-string"),
        pytest.param(1.0, id="a-float"),
    ],
)
def test_a_body_the_read_ahead_cannot_take_is_still_the_operations_to_judge(
    customer: User, customer_client: Client, conversation_id: Any
) -> None:
    """Nothing is read ahead for a conversation id that is not a JSON integer; the operation
    validates the body as it always did (422), and writes nothing."""
    before = database_state()
    response = customer_client.post(
        "/api/v1/messages/process",
        {"message": "hi", "customer_id": customer.pk, "conversation_id": conversation_id},
        content_type="application/json",
    )
    assert response.status_code == 422, response.content
    assert database_state() == before


def test_an_api_key_caller_reads_for_itself(customer: User, superuser: User) -> None:
    """The API key's lookup carries nothing: the turn reads its context itself, same answer."""
    from accounts.services import api_key_create

    conversation = _conversation(customer, 2)
    _key, raw = api_key_create(
        actor=superuser,
        name="k",
        owner_id=customer.pk,
        scopes=["messages:write"],
        expires_at=None,
    )
    response = post_message(Client(headers={"X-API-Key": raw}), customer, "hi", conversation.pk)
    assert response.status_code == 200, response.content
    assert response.json()["conversation_id"] == conversation.pk


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 200 + b"]" * 200, id="deep-json"),
        pytest.param(b"\xff\xfe not utf-8", id="not-utf-8"),
        pytest.param(b'{"conversation_id": 1', id="truncated"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(b'{"conversation_id": 99999999999999999999999}', id="huge-id"),
        pytest.param(b'{"conversation_id": null}', id="new-conversation"),
    ],
)
def test_nothing_is_read_ahead_for_a_body_it_cannot_take(customer: User, body: bytes) -> None:
    from django.test import RequestFactory

    from messaging.api import _context_along

    request = RequestFactory().post(
        "/api/v1/messages/process", data=body, content_type="application/json"
    )
    assert _context_along(request, customer.pk) is None


def test_a_body_over_the_limit_is_left_to_the_operation(customer: User, settings: Any) -> None:
    from django.test import RequestFactory

    from messaging.api import _context_along

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    request = RequestFactory().post(
        "/api/v1/messages/process",
        data=b'{"conversation_id": 1, "message": "long enough"}',
        content_type="application/json",
    )
    assert _context_along(request, customer.pk) is None
