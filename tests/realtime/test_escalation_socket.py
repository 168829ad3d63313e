"""`/ws/escalations/`: staff receive escalation opened / assigned / resolved events."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from accounts import sockets
from accounts.models import SecurityEvent, User
from accounts.scopes import CONVERSATIONS_READ, MESSAGES_WRITE
from escalations import services as escalation_services
from escalations.models import Escalation
from messaging import services
from messaging.models import Conversation
from tests.factories import ConversationFactory
from tests.realtime.conftest import (
    access_token_for,
    answer,
    closed_after,
    collect_until,
    connect_authenticated,
    expect_close,
    make_communicator,
    still_answers,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

PATH = "/ws/escalations/"
db = sync_to_async


def _events(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == "escalation.event"]


async def test_staff_receive_the_escalation_lifecycle(customer: User, operator: User) -> None:
    conversation = await db(ConversationFactory)(customer=customer)
    communicator, ok = await connect_authenticated(PATH, await db(access_token_for)(operator))
    try:
        assert ok == {"type": "auth.ok"}
        await db(services.message_send)(
            customer=customer,
            conversation_id=conversation.pk,
            text="I want to talk to a human please",
        )
        opened = (await collect_until(communicator, lambda f: len(_events(f)) == 1))[0]
        escalation = await db(Escalation.objects.get)(conversation_id=conversation.pk)
        assert opened["event"] == "opened"
        assert opened["escalation"]["id"] == escalation.pk
        assert opened["escalation"]["conversation_id"] == conversation.pk
        assert opened["escalation"]["customer_id"] == customer.pk
        assert opened["escalation"]["status"] == "open"
        assert opened["escalation"]["assigned_to"] is None

        await db(escalation_services.escalation_assign)(
            conversation_id=conversation.pk, actor=operator
        )
        assigned = (await collect_until(communicator, lambda f: len(_events(f)) == 1))[0]
        assert (assigned["event"], assigned["escalation"]["status"]) == ("assigned", "assigned")
        assert assigned["escalation"]["assigned_to"] == operator.pk

        await db(escalation_services.escalation_resolve)(
            conversation_id=conversation.pk, actor=operator, notes="Refunded"
        )
        resolved = (await collect_until(communicator, lambda f: len(_events(f)) == 1))[0]
        assert resolved["event"] == "resolved"
        assert resolved["escalation"]["status"] == "resolved"
        assert resolved["escalation"]["resolution_notes"] == "Refunded"
        assert await communicator.receive_nothing(timeout=0.2)
    finally:
        await communicator.disconnect()


async def test_customer_is_refused_with_4403(customer: User) -> None:
    token = await db(access_token_for)(customer)
    assert await closed_after(PATH, {"type": "auth", "token": token}) == 4403
    event = await db(SecurityEvent.objects.get)()
    assert (event.kind, event.user_id, event.path) == (
        SecurityEvent.Kind.TIER_DENIED,
        customer.pk,
        PATH,
    )


async def test_operator_token_without_manage_scope_is_refused(operator: User) -> None:
    token = await db(access_token_for)(operator, scopes={CONVERSATIONS_READ, MESSAGES_WRITE})
    assert await closed_after(PATH, {"type": "auth", "token": token}) == 4403


async def test_bad_token_closes_4401() -> None:
    assert await closed_after(PATH, {"type": "auth", "token": "x.y.z"}) == 4401


async def test_no_auth_frame_closes_4408(monkeypatch: Any) -> None:
    monkeypatch.setattr(sockets, "AUTH_TIMEOUT_SECONDS", 0.2)
    communicator = make_communicator(PATH)
    await communicator.connect()
    assert await expect_close(communicator, within=3) == 4408
    await communicator.disconnect()


async def test_demoted_operator_is_disconnected(operator: User, monkeypatch: Any) -> None:
    monkeypatch.setattr(sockets, "REVALIDATE_SECONDS", 0.2)
    communicator, _ = await connect_authenticated(PATH, await db(access_token_for)(operator))
    await db(User.objects.filter(pk=operator.pk).update)(is_staff=False)
    assert await expect_close(communicator, within=3) == 4403
    await communicator.disconnect()


async def test_message_frames_are_not_for_this_socket(operator: User) -> None:
    communicator, _ = await connect_authenticated(PATH, await db(access_token_for)(operator))
    try:
        error = await answer(communicator, {"type": "message", "content": "hi"})
        assert (error["type"], error["status"], error["detail"]) == (
            "error",
            400,
            "Unknown frame type 'message'",
        )
        await still_answers(communicator)
        assert await db(Conversation.objects.count)() == 0
    finally:
        await communicator.disconnect()


async def test_disallowed_origin_is_refused() -> None:
    communicator = make_communicator(
        PATH, headers=[(b"origin", b"https://evil.example"), (b"host", b"localhost")]
    )
    connected, _ = await communicator.connect()
    assert connected is False
    await communicator.disconnect()
