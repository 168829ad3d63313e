"""`/ws/conversations/<id>/` (docs/api.md, Websocket protocol) through the real ASGI
application (config.asgi)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from accounts import sockets
from accounts.auth import principal_from_access_token
from accounts.models import SecurityEvent, User
from accounts.scopes import CONVERSATIONS_READ, MESSAGES_WRITE
from accounts.services import token_revoke
from core import outages
from escalations import services as escalation_services
from escalations.models import Escalation
from messaging import consumers, services
from messaging.models import Conversation, Message
from tests.factories import ConversationFactory, EscalationFactory, MessageFactory
from tests.messages import MESSAGE_KEYS
from tests.realtime.conftest import (
    access_token_for,
    answer,
    closed_after,
    collect_until,
    connect_authenticated,
    expect_close,
    make_communicator,
    messages_of,
    seqs_of,
    still_answers,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

db = sync_to_async  # ORM from async tests (one thread, like the tests' sync fixtures)


def _path(conversation_id: int) -> str:
    return f"/ws/conversations/{conversation_id}/"


@db
def _conversation_with_messages(customer: User, count: int) -> Conversation:
    conversation = ConversationFactory(customer=customer)
    for n in range(1, count + 1):
        MessageFactory(
            conversation=conversation,
            content=f"message {n}",
            role=Message.Role.CUSTOMER if n % 2 else Message.Role.AGENT,
        )
    return conversation


@db
def _message_count(conversation_id: int) -> int:
    return Message.objects.filter(conversation_id=conversation_id).count()


@db
def _token(user: User, **kwargs: Any) -> str:
    return access_token_for(user, **kwargs)


@contextlib.asynccontextmanager
async def _customer_socket(
    customer: User, messages: int = 1
) -> AsyncIterator[tuple[Conversation, WebsocketCommunicator]]:
    """A conversation of the customer's with `messages` messages, and the customer's socket to
    it (authenticated); disconnected when the block ends."""
    conversation = await _conversation_with_messages(customer, messages)
    communicator, _ = await connect_authenticated(_path(conversation.pk), await _token(customer))
    try:
        yield conversation, communicator
    finally:
        await communicator.disconnect()


async def _message_refused(communicator: Any, content: str, client_msg_id: str) -> dict[str, Any]:
    """A message frame the socket must refuse: its error frame, which names the frame's
    client_msg_id (the connection stays open)."""
    frame = {"type": "message", "content": content, "client_msg_id": client_msg_id}
    error = await answer(communicator, frame)
    assert (error["type"], error["client_msg_id"]) == ("error", client_msg_id), error
    return error


# --- Authentication and close codes ---------------------------------------------------------


async def test_auth_ok_then_replay_of_seqs_after_after_seq(customer: User) -> None:
    conversation = await _conversation_with_messages(customer, 5)
    token = await _token(customer)
    communicator, ok = await connect_authenticated(_path(conversation.pk), token, after_seq=2)
    try:
        assert ok == {"type": "auth.ok", "conversation_id": conversation.pk}
        frames = await collect_until(communicator, lambda f: len(f) == 3)
        assert [f["type"] for f in frames] == ["message", "message", "message"]
        assert seqs_of(frames) == [3, 4, 5]
        assert [m["content"] for m in messages_of(frames)] == [
            "message 3",
            "message 4",
            "message 5",
        ]
        assert [m["role"] for m in messages_of(frames)] == ["customer", "agent", "customer"]
        assert set(messages_of(frames)[0]) == MESSAGE_KEYS
        assert await communicator.receive_nothing(timeout=0.2)
    finally:
        await communicator.disconnect()


async def test_after_seq_zero_replays_everything(customer: User) -> None:
    conversation = await _conversation_with_messages(customer, 3)
    communicator, _ = await connect_authenticated(
        _path(conversation.pk), await _token(customer), after_seq=0
    )
    try:
        frames = await collect_until(communicator, lambda f: len(f) == 3)
        assert seqs_of(frames) == [1, 2, 3]
        assert await communicator.receive_nothing(timeout=0.2)
    finally:
        await communicator.disconnect()


async def test_previous_releases_one_message_event_still_reaches_the_socket(
    customer: User,
) -> None:
    """During a rolling deploy a process of the previous release publishes `message.created`
    (one message, not yet encoded): the socket sends it like `messages.created`, once per seq,
    and stays open."""
    from channels.layers import get_channel_layer

    from messaging.realtime import conversation_group

    conversation = await _conversation_with_messages(customer, 1)
    communicator, _ = await connect_authenticated(_path(conversation.pk), await _token(customer))
    message = {"id": 99, "seq": 2, "role": "agent", "content": "from the old release"}
    event = {"type": "message.created", "message": message}
    try:
        layer = get_channel_layer()
        await layer.group_send(conversation_group(conversation.pk), event)
        await layer.group_send(conversation_group(conversation.pk), event)  # the same seq again
        assert await communicator.receive_json_from(timeout=5) == {
            "type": "message",
            "message": message,
        }
        assert await communicator.receive_nothing(timeout=0.3)
        await still_answers(communicator)
    finally:
        await communicator.disconnect()


async def test_without_after_seq_only_live_events(customer: User) -> None:
    async with _customer_socket(customer, 3) as (conversation, communicator):
        assert await communicator.receive_nothing(timeout=0.3)


async def test_replay_pages_through_long_backlogs(customer: User, monkeypatch: Any) -> None:
    monkeypatch.setattr(consumers, "REPLAY_PAGE_SIZE", 2)
    conversation = await _conversation_with_messages(customer, 5)
    communicator, _ = await connect_authenticated(
        _path(conversation.pk), await _token(customer), after_seq=0
    )
    try:
        frames = await collect_until(communicator, lambda f: len(f) == 5)
        assert seqs_of(frames) == [1, 2, 3, 4, 5]
        assert await communicator.receive_nothing(timeout=0.2)
    finally:
        await communicator.disconnect()


@pytest.mark.parametrize(
    "first_frame",
    [
        '{"type": "auth", "token": "not-a-jwt"}',
        '{"type": "auth"}',
        '{"type": "auth", "token": 12}',
        '{"type": "message", "content": "hi"}',
        "not json at all",
        "[1, 2]",
    ],
)
async def test_bad_first_frame_closes_4401(customer: User, first_frame: str) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    assert await closed_after(_path(conversation.pk), first_frame) == 4401
    event = await db(SecurityEvent.objects.get)()
    assert event.kind == SecurityEvent.Kind.AUTH_FAILED
    assert event.path == _path(conversation.pk)


async def test_refresh_token_is_not_an_access_token(customer: User) -> None:
    from accounts.services import token_pair_issue

    conversation = await _conversation_with_messages(customer, 1)
    pair = await db(token_pair_issue)(user=customer, requested_scopes=None)
    token = pair.refresh_token
    assert await closed_after(_path(conversation.pk), {"type": "auth", "token": token}) == 4401


async def test_expired_token_closes_4401(customer: User) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    token = await _token(customer, lifetime=timedelta(seconds=-5))
    assert await closed_after(_path(conversation.pk), {"type": "auth", "token": token}) == 4401


async def test_inactive_user_closes_4401(customer: User) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    token = await _token(customer)
    await db(User.objects.filter(pk=customer.pk).update)(is_active=False)
    assert await closed_after(_path(conversation.pk), {"type": "auth", "token": token}) == 4401


async def test_no_auth_frame_in_time_closes_4408(customer: User, monkeypatch: Any) -> None:
    monkeypatch.setattr(sockets, "AUTH_TIMEOUT_SECONDS", 0.2)
    conversation = await _conversation_with_messages(customer, 1)
    communicator = make_communicator(_path(conversation.pk))
    connected, _ = await communicator.connect()
    assert connected
    assert await expect_close(communicator, within=3) == 4408
    await communicator.disconnect()


async def test_auth_frame_cancels_the_timeout(customer: User, monkeypatch: Any) -> None:
    monkeypatch.setattr(sockets, "AUTH_TIMEOUT_SECONDS", 0.3)
    async with _customer_socket(customer) as (conversation, communicator):
        await asyncio.sleep(0.5)
        await still_answers(communicator)


async def test_other_customers_conversation_closes_4404(
    customer: User, other_customer: User
) -> None:
    conversation = await _conversation_with_messages(other_customer, 2)
    communicator = make_communicator(_path(conversation.pk))
    await communicator.connect()
    await communicator.send_json_to(
        {"type": "auth", "token": await _token(customer), "after_seq": 0}
    )
    # Straight to the close: not one of the other customer's messages is sent.
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    assert output["code"] == 4404
    await communicator.disconnect()


@pytest.mark.parametrize("conversation_id", [999_999, 2**63, 0])
async def test_missing_conversation_closes_4404(customer: User, conversation_id: int) -> None:
    token = await _token(customer)
    assert await closed_after(_path(conversation_id), {"type": "auth", "token": token}) == 4404


async def test_token_without_read_scope_closes_4403(customer: User) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    token = await _token(customer, scopes={MESSAGES_WRITE})
    assert await closed_after(_path(conversation.pk), {"type": "auth", "token": token}) == 4403
    assert await db(SecurityEvent.objects.filter(kind=SecurityEvent.Kind.SCOPE_DENIED).count)() == 1


@pytest.mark.parametrize("after_seq", [-1, "3", 1.5, True])
async def test_malformed_after_seq_closes_4400(customer: User, after_seq: Any) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    first = {"type": "auth", "token": await _token(customer), "after_seq": after_seq}
    assert await closed_after(_path(conversation.pk), first) == 4400


@pytest.mark.parametrize(
    "origin",
    [[(b"origin", b"http://evil.example")], [], [(b"origin", b"null")]],
    ids=["foreign", "missing", "null"],
)
async def test_disallowed_origin_is_refused(customer: User, origin: list) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    communicator = make_communicator(
        _path(conversation.pk), headers=[*origin, (b"host", b"localhost")]
    )
    connected, _ = await communicator.connect()
    assert connected is False
    await communicator.disconnect()


# --- Mid-session: expiry, revocation, deactivation ------------------------------------------


async def test_token_expiry_mid_session_closes_4401(customer: User) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    token = await _token(customer, lifetime=timedelta(seconds=2))
    communicator, _ = await connect_authenticated(_path(conversation.pk), token)
    await still_answers(communicator)
    assert await expect_close(communicator, within=5) == 4401
    await communicator.disconnect()


async def test_frame_after_expiry_closes_4401(customer: User, monkeypatch: Any) -> None:
    """Each client frame checks the expiry too, not only the timer."""
    conversation = await _conversation_with_messages(customer, 1)
    communicator, _ = await connect_authenticated(_path(conversation.pk), await _token(customer))
    later = timezone.now() + timedelta(hours=1)
    monkeypatch.setattr(sockets.timezone, "now", lambda: later)
    await communicator.send_json_to({"type": "ping"})
    assert await expect_close(communicator) == 4401
    await communicator.disconnect()


async def test_revoked_token_closes_4401_at_revalidation(customer: User, monkeypatch: Any) -> None:
    monkeypatch.setattr(sockets, "REVALIDATE_SECONDS", 0.3)
    conversation = await _conversation_with_messages(customer, 1)
    token = await _token(customer)
    communicator, _ = await connect_authenticated(_path(conversation.pk), token)
    await asyncio.sleep(0.5)
    await still_answers(communicator)  # still valid across a re-validation
    principal = await db(principal_from_access_token)(token)
    await db(token_revoke)(principal=principal, raw_refresh=None)
    assert await expect_close(communicator, within=3) == 4401
    await communicator.disconnect()


async def test_message_frame_with_revoked_token_closes_4401_and_writes_nothing(
    customer: User,
) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    token = await _token(customer)
    communicator, _ = await connect_authenticated(_path(conversation.pk), token)
    principal = await db(principal_from_access_token)(token)
    await db(token_revoke)(principal=principal, raw_refresh=None)
    await communicator.send_json_to({"type": "message", "content": "hello"})
    assert await expect_close(communicator) == 4401
    await communicator.disconnect()
    assert await _message_count(conversation.pk) == 1


async def test_deactivated_user_is_closed_4401(customer: User, monkeypatch: Any) -> None:
    monkeypatch.setattr(sockets, "REVALIDATE_SECONDS", 0.2)
    conversation = await _conversation_with_messages(customer, 1)
    communicator, _ = await connect_authenticated(_path(conversation.pk), await _token(customer))
    await db(User.objects.filter(pk=customer.pk).update)(is_active=False)
    assert await expect_close(communicator, within=3) == 4401
    await communicator.disconnect()


async def test_demoted_operator_loses_a_foreign_conversation(
    customer: User, operator: User, monkeypatch: Any
) -> None:
    monkeypatch.setattr(sockets, "REVALIDATE_SECONDS", 0.2)
    conversation = await _conversation_with_messages(customer, 1)
    communicator, _ = await connect_authenticated(_path(conversation.pk), await _token(operator))
    await db(User.objects.filter(pk=operator.pk).update)(is_staff=False)
    assert await expect_close(communicator, within=3) == 4404
    await communicator.disconnect()


async def test_reauth_with_a_fresh_token_keeps_the_socket(customer: User) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    short = await _token(customer, lifetime=timedelta(seconds=2))
    communicator, _ = await connect_authenticated(_path(conversation.pk), short)
    try:
        assert await answer(communicator, {"type": "auth", "token": await _token(customer)}) == {
            "type": "auth.ok",
            "conversation_id": conversation.pk,
        }
        await asyncio.sleep(2.5)
        await still_answers(communicator)  # the short token's expiry no longer applies
    finally:
        await communicator.disconnect()


async def test_reauth_as_another_user_closes_4401(customer: User, other_customer: User) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    communicator, _ = await connect_authenticated(_path(conversation.pk), await _token(customer))
    await communicator.send_json_to({"type": "auth", "token": await _token(other_customer)})
    assert await expect_close(communicator) == 4401
    await communicator.disconnect()


# --- Live events ----------------------------------------------------------------------------


async def test_message_sent_over_rest_is_pushed_live(customer: User) -> None:
    conversation = await _conversation_with_messages(customer, 2)
    token = await _token(customer)
    communicator, _ = await connect_authenticated(_path(conversation.pk), token)
    try:
        client = Client(headers={"Authorization": f"Bearer {token}"})
        response = await sync_to_async(client.post)(
            "/api/v1/messages/process",
            data={
                "message": "Hello",
                "customer_id": customer.pk,
                "conversation_id": conversation.pk,
            },
            content_type="application/json",
        )
        assert response.status_code == 200
        body = response.json()
        frames = await collect_until(communicator, lambda f: len(f) == 2)
        customer_message, reply = messages_of(frames)
        assert (customer_message["seq"], customer_message["role"]) == (3, "customer")
        assert customer_message["content"] == "Hello"
        assert (reply["seq"], reply["role"]) == (4, "agent")
        assert reply["content"] == body["response"]
        assert reply["id"] == body["message_id"]
        assert await communicator.receive_nothing(timeout=0.2)
    finally:
        await communicator.disconnect()


async def test_every_subscriber_gets_the_push(customer: User, operator: User) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    mine, _ = await connect_authenticated(_path(conversation.pk), await _token(customer))
    staff, _ = await connect_authenticated(_path(conversation.pk), await _token(operator))
    try:
        await db(services.message_send)(
            customer=customer, conversation_id=conversation.pk, text="Hello"
        )
        for communicator in (mine, staff):
            frames = await collect_until(communicator, lambda f: len(f) == 2)
            assert seqs_of(frames) == [2, 3]
    finally:
        await mine.disconnect()
        await staff.disconnect()


async def test_operator_reply_is_delivered_live(customer: User, operator: User) -> None:
    escalation = await db(EscalationFactory)(conversation__customer=customer)
    conversation_id = escalation.conversation_id
    communicator, _ = await connect_authenticated(_path(conversation_id), await _token(customer))
    try:
        await db(escalation_services.escalation_reply)(
            conversation_id=conversation_id, actor=operator, text="Hi, Olivia here. <b>Hello</b>"
        )
        frames = await collect_until(communicator, lambda f: len(f) == 2)
        joined, reply = messages_of(frames)
        assert joined["role"] == "system"
        assert joined["content"] == f"{operator.first_name} joined the conversation."
        assert reply["role"] == "operator"
        assert reply["content"] == "Hi, Olivia here. <b>Hello</b>"
        assert reply["seq"] == joined["seq"] + 1
    finally:
        await communicator.disconnect()


async def test_escalation_and_resolution_push_status_events(customer: User, operator: User) -> None:
    async with _customer_socket(customer) as (conversation, communicator):
        await communicator.send_json_to(
            {"type": "message", "content": "I want to talk to a human please"}
        )

        def escalated(frames: list[dict[str, Any]]) -> bool:
            return (
                any(f["type"] == "conversation.status" for f in frames)
                and len(messages_of(frames)) == 3
            )

        frames = await collect_until(communicator, escalated)
        escalation = await db(Escalation.objects.get)(conversation_id=conversation.pk)
        status = next(f for f in frames if f["type"] == "conversation.status")
        assert status == {
            "type": "conversation.status",
            "status": "escalated",
            "escalation_id": escalation.pk,
        }
        assert [m["role"] for m in messages_of(frames)] == ["customer", "agent", "system"]
        assert messages_of(frames)[2]["content"] == escalation_services.OPENED_TEXT

        await db(escalation_services.escalation_resolve)(
            conversation_id=conversation.pk, actor=operator, notes="done"
        )
        frames = await collect_until(
            communicator,
            lambda f: any(x["type"] == "conversation.status" for x in f) and bool(messages_of(f)),
        )
        assert {
            "type": "conversation.status",
            "status": "resolved",
            "escalation_id": escalation.pk,
        } in frames
        assert messages_of(frames)[0]["content"] == escalation_services.resolved_text(
            operator.public_name
        )


async def test_commit_between_subscribe_and_replay_is_sent_once(
    customer: User, monkeypatch: Any
) -> None:
    """A message committed after the subscription but before the replay read arrives twice
    (live and in the replay); the client sees it once."""
    conversation = await _conversation_with_messages(customer, 2)
    original = consumers._messages_after_payloads
    written = []

    def write_then_read(**kwargs: Any) -> list[dict[str, Any]]:
        if not written:
            written.append(
                services.message_send(
                    customer=customer, conversation_id=conversation.pk, text="Hello"
                )
            )
        return original(**kwargs)

    monkeypatch.setattr(consumers, "_messages_after_payloads", write_then_read)
    communicator, _ = await connect_authenticated(
        _path(conversation.pk), await _token(customer), after_seq=1
    )
    try:
        frames = await collect_until(communicator, lambda f: len(f) == 3)
        assert seqs_of(frames) == [2, 3, 4]
        assert await communicator.receive_nothing(timeout=0.3)  # no second copy of 3 and 4
    finally:
        await communicator.disconnect()


async def test_concurrent_writers_during_resume_lose_and_double_nothing(
    customer: User, settings: Any
) -> None:
    settings.RATE_LIMIT_MESSAGES = "100/m"
    conversation = await _conversation_with_messages(customer, 3)

    def write_many() -> None:
        for n in range(6):
            services.message_send(
                customer=customer,
                conversation_id=conversation.pk,
                text=f"Hello, question {n} about my invoice",
            )

    writer = asyncio.ensure_future(sync_to_async(write_many, thread_sensitive=False)())
    await asyncio.sleep(0.01)
    communicator, _ = await connect_authenticated(
        _path(conversation.pk), await _token(customer), after_seq=0
    )
    try:
        await writer
        total = (await db(Conversation.objects.get)(pk=conversation.pk)).last_seq
        assert total == 3 + 6 * 2
        frames = await collect_until(
            communicator, lambda f: len(messages_of(f)) >= total, within=10
        )
        assert sorted(seqs_of(frames)) == list(range(1, total + 1))
        assert await communicator.receive_nothing(timeout=0.3)
    finally:
        await communicator.disconnect()


# --- Chat over the socket -------------------------------------------------------------------


async def test_chat_over_the_socket_with_idempotent_client_msg_id(customer: User) -> None:
    async with _customer_socket(customer) as (conversation, communicator):
        frame = {"type": "message", "content": "  Hello there  ", "client_msg_id": "c-1"}
        await communicator.send_json_to(frame)
        frames = await collect_until(
            communicator, lambda f: len(f) == 3 and any(x["type"] == "message.ack" for x in f)
        )
        ack = next(f for f in frames if f["type"] == "message.ack")
        assert ack == {
            "type": "message.ack",
            "client_msg_id": "c-1",
            "replayed": False,
            "status": "success",
            "customer_message_seq": 2,
            "reply_seq": 3,
        }
        customer_message, reply = messages_of(frames)
        assert (customer_message["seq"], customer_message["content"]) == (2, "Hello there")
        assert (reply["seq"], reply["role"]) == (3, "agent")

        # The same client_msg_id again (a retry after a lost ack): replayed, nothing written.
        assert await answer(communicator, frame) == {**ack, "replayed": True}
        assert await communicator.receive_nothing(timeout=0.3)
        assert await _message_count(conversation.pk) == 3

        # The same id with other content: 422, connection open, nothing written.
        error = await _message_refused(communicator, "Something else", "c-1")
        assert error["status"] == 422
        assert error["detail"] == (
            "This Idempotency-Key was already used with a different request body"
        )
        await still_answers(communicator)
        assert await _message_count(conversation.pk) == 3


async def test_rate_limit_applies_over_the_socket(customer: User, settings: Any) -> None:
    settings.RATE_LIMIT_MESSAGES = "2/m"
    async with _customer_socket(customer) as (conversation, communicator):
        for n in range(2):
            await communicator.send_json_to(
                {"type": "message", "content": f"hi {n}", "client_msg_id": f"m{n}"}
            )
            await collect_until(communicator, lambda f: len(f) == 3)
        error = await _message_refused(communicator, "third", "m2")
        assert (error["status"], error["code"]) == (429, "rate_limited")
        assert error["retry_after"] >= 1
        await still_answers(communicator)
        assert await _message_count(conversation.pk) == 5


async def test_operator_cannot_write_as_the_customer(customer: User, operator: User) -> None:
    conversation = await _conversation_with_messages(customer, 2)
    communicator, ok = await connect_authenticated(
        _path(conversation.pk), await _token(operator), after_seq=0
    )
    try:
        assert ok["conversation_id"] == conversation.pk
        assert seqs_of(await collect_until(communicator, lambda f: len(f) == 2)) == [1, 2]
        error = await _message_refused(communicator, "hi", "op-1")
        # The same answer as POST /messages/process for someone else's conversation.
        assert (error["status"], error["code"]) == (404, "not_found")
        assert error["detail"] == "Conversation not found"
        await still_answers(communicator)
        assert await _message_count(conversation.pk) == 2
    finally:
        await communicator.disconnect()


async def test_operator_token_without_manage_scope_cannot_read_others(
    customer: User, operator: User
) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    token = await _token(operator, scopes={CONVERSATIONS_READ})
    assert await closed_after(_path(conversation.pk), {"type": "auth", "token": token}) == 4404


async def test_message_without_write_scope_is_an_error(customer: User) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    communicator, _ = await connect_authenticated(
        _path(conversation.pk), await _token(customer, scopes={CONVERSATIONS_READ})
    )
    try:
        error = await answer(communicator, {"type": "message", "content": "hi"})
        assert (error["type"], error["status"], error["code"]) == (
            "error",
            403,
            "insufficient_scope",
        )
        assert error["detail"] == "This action needs the 'messages:write' scope"
        await still_answers(communicator)
        assert await _message_count(conversation.pk) == 1
    finally:
        await communicator.disconnect()


# --- Bad frames -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "status", "detail"),
    [
        ("not json", 400, "Frames must be JSON objects"),
        ("[1, 2]", 400, "Frames must be JSON objects with a string 'type'"),
        ('{"type": 5}', 400, "Frames must be JSON objects with a string 'type'"),
        ('{"type": "subscribe"}', 400, "Unknown frame type 'subscribe'"),
        ('{"type": "message"}', 422, "'content' must be a string"),
        ('{"type": "message", "content": "   "}', 422, "Message must not be empty"),
        (
            '{"type": "message", "content": "x", "client_msg_id": 7}',
            422,
            "'client_msg_id' must be a string",
        ),
        (
            '{"type": "message", "content": "' + "x" * 4001 + '"}',
            422,
            "Message must be at most 4000 characters",
        ),
        (
            '{"type": "message", "content": "x", "client_msg_id": ""}',
            422,
            "Idempotency-Key must be 1..255 printable characters",
        ),
    ],
)
async def test_bad_frames_get_an_error_and_the_connection_stays_open(
    customer: User, frame: str, status: int, detail: str
) -> None:
    async with _customer_socket(customer) as (conversation, communicator):
        await communicator.send_to(text_data=frame)
        error = await communicator.receive_json_from(timeout=5)
        assert error["type"] == "error"
        assert (error["status"], error["detail"]) == (status, detail)
        await still_answers(communicator)
        assert await _message_count(conversation.pk) == 1


async def test_binary_frames_get_an_error(customer: User) -> None:
    async with _customer_socket(customer) as (conversation, communicator):
        await communicator.send_to(bytes_data=b'{"type": "ping"}')
        error = await communicator.receive_json_from(timeout=5)
        assert (error["type"], error["status"], error["code"]) == ("error", 400, "bad_frame")
        await still_answers(communicator)


async def test_oversized_frame_closes_1009_and_spares_other_connections(
    customer: User,
) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    token = await _token(customer)
    attacker, _ = await connect_authenticated(_path(conversation.pk), token)
    bystander, _ = await connect_authenticated(_path(conversation.pk), token)
    try:
        huge = json.dumps({"type": "message", "content": "é" * (33 * 1024)})  # > 64 KiB UTF-8
        await attacker.send_to(text_data=huge)
        assert await expect_close(attacker) == 1009
        await still_answers(bystander)
        await db(services.message_send)(
            customer=customer, conversation_id=conversation.pk, text="still here"
        )
        frames = await collect_until(bystander, lambda f: len(f) == 2)
        assert seqs_of(frames) == [2, 3]
    finally:
        await attacker.disconnect()
        await bystander.disconnect()


async def test_oversized_first_frame_closes_1009(customer: User) -> None:
    conversation = await _conversation_with_messages(customer, 1)
    assert await closed_after(_path(conversation.pk), "x" * (64 * 1024 + 1)) == 1009


async def test_frame_flood_is_refused_then_disconnected(customer: User, monkeypatch: Any) -> None:
    monkeypatch.setattr(sockets, "FRAME_BURST", 3)
    monkeypatch.setattr(sockets, "FRAME_RATE_PER_SECOND", 0.001)
    monkeypatch.setattr(sockets, "MAX_REFUSED_FRAMES", 5)
    conversation = await _conversation_with_messages(customer, 1)
    communicator, _ = await connect_authenticated(_path(conversation.pk), await _token(customer))
    for _ in range(3):
        await still_answers(communicator)
    for _ in range(5):
        await communicator.send_json_to({"type": "ping"})
    error = await communicator.receive_json_from(timeout=5)
    assert (error["type"], error["status"], error["code"]) == ("error", 429, "too_many_frames")
    assert await communicator.receive_nothing(timeout=0.2)  # one notice per burst
    await communicator.send_json_to({"type": "ping"})
    assert await expect_close(communicator) == 1008
    await communicator.disconnect()


async def test_unknown_path_is_refused_cleanly() -> None:
    """The catch-all route (see docs/realtime.md) refuses the handshake instead of raising."""
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator
    from django.urls import re_path

    from accounts.sockets import websocket_route_not_found
    from messaging.routing import websocket_urlpatterns
    from tests.realtime.conftest import HOST, ORIGIN

    application = URLRouter([*websocket_urlpatterns, re_path(r"", websocket_route_not_found)])
    communicator = WebsocketCommunicator(application, "/ws/nope/", headers=[ORIGIN, HOST])
    assert await communicator.connect() == (False, 4404)
    await communicator.disconnect()


# --- A lost database or Redis ---------------------------------------------------------------


def _database_down(*_: object, **__: object) -> Any:
    raise OperationalError("terminating connection due to administrator command")


async def test_a_message_during_an_outage_is_a_503_frame_and_its_id_stays_free(
    customer: User, monkeypatch: Any
) -> None:
    """Over the socket as over REST: `unavailable` with retry_after, the socket stays open,
    nothing is written, and the same client_msg_id goes through once the database is back."""
    monkeypatch.setitem(outages.CHECKS, "database", lambda: _database_down())
    async with _customer_socket(customer) as (conversation, communicator):
        real = services.fastpath.agent_context
        monkeypatch.setattr(services.fastpath, "agent_context", _database_down)
        frame = {"type": "message", "content": "hello", "client_msg_id": "during"}
        assert await answer(communicator, frame) == {
            "type": "error",
            "detail": "Service temporarily unavailable",
            "status": 503,
            "code": "unavailable",
            "retry_after": 5,
            "client_msg_id": "during",
        }
        await still_answers(communicator)
        assert await _message_count(conversation.pk) == 1
        assert list(outages.outages_current()) == ["database"]

        monkeypatch.setattr(services.fastpath, "agent_context", real)
        await communicator.send_json_to(frame)
        frames = await collect_until(
            communicator, lambda f: any(x["type"] == "message.ack" for x in f)
        )
        ack = next(f for f in frames if f["type"] == "message.ack")
        assert (ack["client_msg_id"], ack["replayed"], ack["customer_message_seq"]) == (
            "during",
            False,
            2,
        )


async def test_authenticating_during_an_outage_closes_1013(
    customer: User, monkeypatch: Any
) -> None:
    """Try again later (1013), not a silent socket that times out as unauthenticated."""
    monkeypatch.setitem(outages.CHECKS, "database", lambda: _database_down())
    conversation = await _conversation_with_messages(customer, 1)
    token = await _token(customer)
    monkeypatch.setattr(sockets, "authenticate_and_authorize", _database_down)
    communicator = make_communicator(_path(conversation.pk))
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "auth", "token": token})
    assert await expect_close(communicator) == sockets.CLOSE_TRY_AGAIN_LATER
    await communicator.disconnect()


async def test_revalidation_outlives_an_outage(customer: User, monkeypatch: Any) -> None:
    """A re-check that meets the outage keeps the socket (it passed the last one) and the
    re-checks go on: a token revoked after the outage still closes it."""
    monkeypatch.setitem(outages.CHECKS, "database", lambda: _database_down())
    monkeypatch.setattr(sockets, "REVALIDATE_SECONDS", 0.2)
    conversation = await _conversation_with_messages(customer, 1)
    token = await _token(customer)
    communicator, _ = await connect_authenticated(_path(conversation.pk), token)
    real = sockets.authenticate_and_authorize
    failed: list[int] = []

    def down_twice(*args: Any) -> Any:
        if len(failed) < 2:
            failed.append(1)
            _database_down()
        return real(*args)

    monkeypatch.setattr(sockets, "authenticate_and_authorize", down_twice)
    await asyncio.sleep(0.6)
    assert len(failed) == 2
    await still_answers(communicator)
    principal = await db(principal_from_access_token)(token)
    await db(token_revoke)(principal=principal, raw_refresh=None)
    assert await expect_close(communicator, within=3) == 4401
    await communicator.disconnect()
