"""Hostile frames on both sockets, before and after authentication.

Before authentication every frame that is not a valid auth frame closes the socket with 4401;
after it, every malformed frame gets an `error` frame and the connection keeps answering. No
frame ends the consumer, nothing is written, and a closed socket leaves no task running and no
group membership behind (also after an unexpected exception, also when the client vanished
mid-send).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer

from accounts import sockets
from accounts.models import User
from accounts.sockets import TokenAuthenticatedConsumer
from messaging import consumers
from messaging.models import Conversation, Message
from messaging.realtime import ESCALATIONS_GROUP, conversation_group
from tests.factories import ConversationFactory, MessageFactory
from tests.realtime.conftest import (
    access_token_for,
    answer,
    connect_authenticated,
    expect_close,
    make_communicator,
    still_answers,
)
from tests.snapshots import database_state

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

db = sync_to_async

DEEP_ARRAY = "[" * 30_000 + "]" * 30_000  # under the 64 KiB frame limit, RecursionError deep
DEEP_OBJECT = '{"a":' * 10_000 + "1" + "}" * 10_000

# Frames that are not a JSON object with a string `type`: (id, text or bytes).
NOT_AN_OBJECT: list[tuple[str, str | bytes]] = [
    ("invalid-json", "not json"),
    ("truncated-json", '{"type": "auth", "token": '),
    ("nul-byte", "\x00"),
    ("empty", ""),
    ("deep-array", DEEP_ARRAY),
    ("deep-object", DEEP_OBJECT),
    ("deep-inside-an-object", '{"type": "ping", "x": ' + DEEP_ARRAY + "}"),
    # One level past the API's limit (32): json.loads would parse it; the sockets do not.
    ("one-past-the-depth-limit", '{"type": "ping", "x": ' + "[" * 32 + "]" * 32 + "}"),
    ("array", "[1, 2]"),
    ("number", "1"),
    ("null", "null"),
    ("string", '"auth"'),
    ("no-type", "{}"),
    ("type-number", '{"type": 5}'),
    ("type-null", '{"type": null}'),
    ("type-object", '{"type": {"type": "auth"}}'),
    ("binary", b'{"type": "ping"}'),
]

# Well-formed objects whose fields are hostile: after auth each gets an error frame (status).
HOSTILE_FIELDS: list[tuple[str, str, int]] = [
    ("unknown-type", '{"type": "subscribe"}', 400),
    ("nul-type", '{"type": "pi\\u0000ng"}', 400),
    ("surrogate-type", '{"type": "\\udfff"}', 400),
    ("raw-surrogate-type", '{"type": "\ud800"}', 400),
    ("long-type", '{"type": "' + "x" * 10_000 + '"}', 400),
    ("auth-token-number", '{"type": "auth", "token": 5}', 4401),
]


def _message(**fields: Any) -> str:
    """A message frame with these fields, encoded as a client's JSON library would."""
    return json.dumps({"type": "message", **fields})


# Message frames (conversation socket): content and client_msg_id of every wrong kind.
HOSTILE_MESSAGES: list[tuple[str, str, int]] = [
    ("content-missing", _message(), 422),
    ("content-number", _message(content=5), 422),
    ("content-object", _message(content={"a": 1}), 422),
    # Raw: too deep for an encoder, and cut off.
    ("content-deep", '{"type": "message", "content": ' + DEEP_ARRAY[:4000] + "}", 400),
    ("content-nul", _message(content="a\x00b"), 422),
    ("content-lone-surrogate", _message(content="a\ud800b"), 422),
    ("content-low-surrogate", _message(content="\udc00"), 422),
    ("content-blank", _message(content=" \n\t "), 422),
    ("content-too-long", _message(content="x" * 4001), 422),
    ("msg-id-number", _message(content="hi", client_msg_id=7), 422),
    ("msg-id-empty", _message(content="hi", client_msg_id=""), 422),
    ("msg-id-nul", _message(content="hi", client_msg_id="a\x00"), 422),
    ("msg-id-surrogate", _message(content="hi", client_msg_id="\ud800"), 422),
    ("msg-id-too-long", _message(content="hi", client_msg_id="k" * 256), 422),
]


@pytest.fixture
def live_consumers(monkeypatch: Any) -> list[TokenAuthenticatedConsumer]:
    """Every consumer instance the test's connections create, to look inside after a close."""
    created: list[TokenAuthenticatedConsumer] = []
    original = TokenAuthenticatedConsumer.__init__

    def init(self: TokenAuthenticatedConsumer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(TokenAuthenticatedConsumer, "__init__", init)
    # Enough budget for every hostile frame on one connection.
    monkeypatch.setattr(sockets, "FRAME_BURST", 1000)
    return created


def _group_members(group: str) -> set[str]:
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        return set(layer.groups.get(group, {}))
    inner = layer._get_layer()  # channels_redis pub/sub: the current loop's layer
    return set(inner.groups.get(inner._get_group_channel_name(group), set()))


def _setup(customer: User, operator: User) -> tuple[Conversation, str, str]:
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation, role=Message.Role.CUSTOMER, content="hello")
    return conversation, access_token_for(customer), access_token_for(operator)


async def _send(communicator: Any, frame: str | bytes) -> None:
    # send_input, not send_to: the test communicator refuses an empty frame, a server does not.
    key = "bytes" if isinstance(frame, bytes) else "text"
    await communicator.send_input({"type": "websocket.receive", key: frame})


@dataclass
class Target:
    """A socket under attack: its path, a token that opens it, the group it then joins."""

    path: str
    token: str
    group: str


@pytest.fixture(params=["conversation", "escalations"])
def target(request: pytest.FixtureRequest, customer: User, operator: User) -> Target:
    """Each test that takes it runs against both sockets."""
    conversation, customer_token, operator_token = _setup(customer, operator)
    if request.param == "conversation":
        path = f"/ws/conversations/{conversation.pk}/"
        return Target(path, customer_token, conversation_group(conversation.pk))
    return Target("/ws/escalations/", operator_token, ESCALATIONS_GROUP)


# --- Before authentication: 4401, nothing else ----------------------------------------------


async def test_every_bad_first_frame_closes_4401(live_consumers: list[Any], target: Target) -> None:
    path = target.path
    before = await db(database_state)()
    first_frames = [frame for _, frame in NOT_AN_OBJECT] + [
        frame for _, frame, _ in HOSTILE_FIELDS + HOSTILE_MESSAGES
    ]
    for frame in first_frames:
        communicator = make_communicator(path)
        connected, _ = await communicator.connect()
        assert connected
        await _send(communicator, frame)
        assert await expect_close(communicator) == 4401, frame[:80]
        await communicator.disconnect()
    assert await db(database_state)() == before
    # Every consumer stopped its timers and joined no group.
    assert len(live_consumers) == len(first_frames)
    assert all(not consumer._tasks and not consumer.groups for consumer in live_consumers)


# --- After authentication: an error frame, and the connection lives on ----------------------


async def _errors_for(path: str, token: str, frames: list[str | bytes]) -> list[dict[str, Any]]:
    """Each frame sent on one authenticated socket: the error frame that answered each, in order.
    After every one the socket still answers a ping, and nothing in the database changed."""
    before = await db(database_state)()
    communicator, _ = await connect_authenticated(path, token)
    errors = []
    try:
        for frame in frames:
            await _send(communicator, frame)
            errors.append(await communicator.receive_json_from(timeout=5))
            await still_answers(communicator)
    finally:
        await communicator.disconnect()
    assert await db(database_state)() == before
    return errors


async def test_every_frame_that_is_not_an_object_gets_an_error_frame(
    live_consumers: list[Any], target: Target
) -> None:
    path, token = target.path, target.token
    # A re-auth frame without a usable token ends the session instead (below).
    fields = [(name, frame, status) for name, frame, status in HOSTILE_FIELDS if status != 4401]

    errors = await _errors_for(
        path, token, [frame for _, frame in NOT_AN_OBJECT] + [frame for _, frame, _ in fields]
    )

    answered = [(e["type"], e["status"], e.get("code")) for e in errors]
    assert answered[: len(NOT_AN_OBJECT)] == [("error", 400, "bad_frame") for _ in NOT_AN_OBJECT], [
        name for name, _ in NOT_AN_OBJECT
    ]
    assert [(kind, status) for kind, status, _ in answered[len(NOT_AN_OBJECT) :]] == [
        ("error", status) for _, _, status in fields
    ], [name for name, _, _ in fields]


async def test_every_hostile_message_frame_gets_an_error_frame(
    customer: User, operator: User, live_consumers: list[Any]
) -> None:
    conversation, customer_token, _ = await db(_setup)(customer, operator)
    path = f"/ws/conversations/{conversation.pk}/"

    errors = await _errors_for(path, customer_token, [frame for _, frame, _ in HOSTILE_MESSAGES])

    assert [(e["type"], e["status"]) for e in errors] == [
        ("error", status) for _, _, status in HOSTILE_MESSAGES
    ], (HOSTILE_MESSAGES, errors)


async def test_message_frames_on_the_escalation_socket_are_unknown(
    customer: User, operator: User, live_consumers: list[Any]
) -> None:
    _, _, operator_token = await db(_setup)(customer, operator)
    frames = [frame for _, frame, _ in HOSTILE_MESSAGES]

    errors = await _errors_for("/ws/escalations/", operator_token, frames)

    assert [(e["type"], e["status"], e["code"]) for e in errors] == [
        ("error", 400, "bad_frame" if name == "content-deep" else "unknown_type")
        for name, _, _ in HOSTILE_MESSAGES
    ]


async def test_reauth_frame_without_a_token_closes_4401(
    live_consumers: list[Any], target: Target
) -> None:
    path, token = target.path, target.token
    communicator, _ = await connect_authenticated(path, token)
    await _send(communicator, '{"type": "auth", "token": 5}')
    assert await expect_close(communicator) == 4401
    await communicator.disconnect()
    (consumer,) = live_consumers
    assert not consumer._tasks
    assert not consumer.groups


# --- Unexpected exceptions and vanished clients ----------------------------------------------


async def test_an_unexpected_exception_answers_500_and_keeps_the_connection(
    customer: User, operator: User, live_consumers: list[Any], monkeypatch: Any
) -> None:
    conversation, customer_token, _ = await db(_setup)(customer, operator)

    async def broken(self: Any, kind: str, frame: dict[str, Any]) -> bool:
        raise RuntimeError("a bug in a frame handler")

    monkeypatch.setattr(consumers.ConversationConsumer, "handle_frame", broken)
    communicator, _ = await connect_authenticated(
        f"/ws/conversations/{conversation.pk}/", customer_token
    )
    (consumer,) = live_consumers
    try:
        error = await answer(communicator, {"type": "message", "content": "hi"})
        assert error == {
            "type": "error",
            "detail": "Internal server error",
            "status": 500,
            "code": "internal_error",
            "request_id": consumer.request_id,
        }
        await still_answers(communicator)
        group = conversation_group(conversation.pk)
        assert consumer.channel_name in _group_members(group)
        tasks = list(consumer._tasks.values())
        assert tasks  # the expiry and re-validation timers
    finally:
        await communicator.disconnect()
    assert all(task.done() for task in tasks)
    assert consumer._tasks == {}
    assert consumer.channel_name not in _group_members(group)


async def test_a_failing_send_in_the_worker_answers_500(
    customer: User, operator: User, live_consumers: list[Any], monkeypatch: Any
) -> None:
    conversation, customer_token, _ = await db(_setup)(customer, operator)
    before = await db(database_state)()

    def broken_send(**kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(consumers, "_message_send_as", broken_send)
    communicator, _ = await connect_authenticated(
        f"/ws/conversations/{conversation.pk}/", customer_token
    )
    (consumer,) = live_consumers
    try:
        error = await answer(
            communicator, {"type": "message", "content": "hi", "client_msg_id": "a"}
        )
        assert (error["status"], error["code"], error["client_msg_id"]) == (
            500,
            "internal_error",
            "a",
        )
        assert error["request_id"] == consumer.request_id
        await still_answers(communicator)
        tasks = list(consumer._tasks.values())
        assert "sender" in consumer._tasks
    finally:
        await communicator.disconnect()
    assert all(task.done() for task in tasks)
    assert await db(database_state)() == before


async def test_client_vanishing_mid_send_leaves_no_task_or_group(
    live_consumers: list[Any], monkeypatch: Any, target: Target
) -> None:
    path, token = target.path, target.token
    group = target.group
    communicator, _ = await connect_authenticated(path, token)
    (consumer,) = live_consumers
    assert consumer.channel_name in _group_members(group)

    async def gone(*args: Any, **kwargs: Any) -> None:
        raise OSError("client disconnected")  # what uvicorn raises (ClientDisconnected)

    monkeypatch.setattr(consumer, "send", gone)
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_nothing(timeout=0.2)
    assert consumer.closing is True
    tasks = list(consumer._tasks.values())
    assert tasks
    await communicator.disconnect()
    assert all(task.done() for task in tasks)
    assert consumer._tasks == {}
    assert consumer.channel_name not in _group_members(group)


# --- The depth limit is the API's: 32 levels --------------------------------------------------


def _nested(frame: dict[str, Any], depth: int) -> str:
    """`frame` as JSON with a field nesting arrays so the whole frame is `depth` levels deep."""
    return (
        json.dumps({**frame, "pad": "@"})[:-1].replace('"@"', "[" * (depth - 1) + "]" * (depth - 1))
        + "}"
    )


async def test_frames_obey_the_apis_depth_limit(target: Target) -> None:
    path, token = target.path, target.token

    # Before authentication: a valid auth frame one level too deep is not an auth frame.
    communicator = make_communicator(path)
    assert (await communicator.connect())[0]
    await _send(communicator, _nested({"type": "auth", "token": token}, 33))
    assert await expect_close(communicator) == 4401
    await communicator.disconnect()

    communicator = make_communicator(path)
    assert (await communicator.connect())[0]
    await _send(communicator, _nested({"type": "auth", "token": token}, 32))
    assert (await communicator.receive_json_from(timeout=5))["type"] == "auth.ok"
    try:
        # After it: an error frame naming the limit, and the socket answers on.
        await _send(communicator, _nested({"type": "ping"}, 33))
        assert await communicator.receive_json_from(timeout=5) == {
            "type": "error",
            "detail": "JSON nested deeper than 32 levels",
            "status": 400,
            "code": "bad_frame",
        }
        await _send(communicator, _nested({"type": "ping"}, 32))
        assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    finally:
        await communicator.disconnect()
