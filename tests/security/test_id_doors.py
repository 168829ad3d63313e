"""One id parser (core/ids.py) at every door that is not the admin's (tests/security/
test_admin_hostile_ids.py covers those): REST paths and queries, token claims, websocket URLs,
and security events that name an account deleted meanwhile."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from django.test import Client

from accounts.models import SecurityEvent, User
from accounts.security import security_event_record
from core.ids import MAX_ID, parse_id
from tests.factories import ConversationFactory, MessageFactory
from tests.realtime.conftest import access_token_for, expect_close, make_communicator
from tests.tokens import access_claims, token_of

HOSTILE_IDS = ["²", "٣", "12345678901234567890", "-1", "0x1", "1e3", "1_0", " 1", "+1", "1.0", ""]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1),
        ("0042", 42),
        (str(MAX_ID), MAX_ID),
        (7, 7),
        (str(MAX_ID + 1), None),
        ("0", None),
        (0, None),
        (-3, None),
        (True, None),
        (1.0, None),
        (None, None),
        ("0" * 65 + "1", None),
        *[(hostile, None) for hostile in HOSTILE_IDS],
    ],
)
def test_parse_id(value: Any, expected: int | None) -> None:
    assert parse_id(value) == expected


# --- REST paths and queries --------------------------------------------------------------------


@pytest.mark.django_db
def test_lenient_spellings_of_an_id_in_the_path_name_no_row(
    customer: User, customer_client: Client
) -> None:
    """The caller's own conversation, spelled as anything but ASCII digits, is not found:
    ninja's lenient int parsing read "5.0", "5_0"-style and padded spellings as 5."""
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation, role="customer", content="hi")
    pk = conversation.pk
    assert customer_client.get(f"/api/v1/conversations/{pk}/history").status_code == 200
    assert customer_client.get(f"/api/v1/conversations/000{pk}/history").status_code == 200
    for spelling in (f"{pk}.0", f"%20{pk}", f"%2B{pk}", f"{pk}%20", "%C2%B2", "%D9%A3"):
        response = customer_client.get(f"/api/v1/conversations/{spelling}/history")
        assert response.status_code == 404, spelling
        assert response.json() == {"detail": "Conversation not found"}


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["1_000", "%201", "1.0", "%C2%B2", str(MAX_ID + 1), "0"])
def test_an_id_filter_in_the_query_is_read_by_the_same_parser(
    superuser_client: Client, value: str
) -> None:
    response = superuser_client.get(f"/api/v1/security-events?user_id={value}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "user_id"]


# --- Token claims ---------------------------------------------------------------------------------


def _token(user: User, token_type: str = "access", **claims: Any) -> str:  # noqa: S107
    return token_of(access_claims(user, token_type=token_type, **claims))


@pytest.mark.django_db
@pytest.mark.parametrize("sub", [*HOSTILE_IDS, "0", str(MAX_ID + 1)])
def test_a_validly_signed_token_whose_subject_is_no_id_is_a_401(customer: User, sub: str) -> None:
    access = Client(headers={"Authorization": f"Bearer {_token(customer, sub=sub)}"})
    me = access.get("/api/v1/auth/me")
    refresh = Client().post(
        "/api/v1/auth/refresh",
        {"refresh_token": _token(customer, "refresh", sub=sub)},
        content_type="application/json",
    )
    assert (me.status_code, refresh.status_code) == (401, 401)
    assert me["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.django_db
@pytest.mark.parametrize("family", ["", "a\x00b", "é" * 10, "x" * 65, 7])
def test_a_validly_signed_token_whose_family_is_malformed_is_a_401(
    customer: User, family: Any
) -> None:
    access = Client(headers={"Authorization": f"Bearer {_token(customer, fam=family)}"})
    assert access.get("/api/v1/auth/me").status_code == 401


# --- Websocket URLs ---------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path_id", ["12345678901234567890", "0", "00"])
async def test_a_conversation_socket_for_an_impossible_id_closes_as_not_found(
    customer: User, path_id: str
) -> None:
    token = await sync_to_async(access_token_for)(customer)
    communicator = make_communicator(f"/ws/conversations/{path_id}/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "auth", "token": token})
    assert await expect_close(communicator) == 4404
    await communicator.disconnect()


# --- Security events that name an account deleted meanwhile ---------------------------------------


@pytest.mark.django_db(transaction=True)  # committed: a dangling foreign key fails at COMMIT
def test_a_security_event_for_a_deleted_account_is_stored_without_a_user(customer: User) -> None:
    stale = User.objects.get(pk=customer.pk)
    User.objects.filter(pk=customer.pk).delete()

    with transaction.atomic():  # the caller's transaction must survive the event
        security_event_record(kind=SecurityEvent.Kind.AUTH_FAILED, user=stale, detail={"x": 1})
        assert User.objects.count() == 0

    event = SecurityEvent.objects.get()
    assert (event.user_id, event.detail) == (None, {"x": 1})
