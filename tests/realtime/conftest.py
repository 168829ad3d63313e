"""Helpers for the websocket tests: a communicator that passes the origin check, frame
collection with timeouts, short-lived tokens, and a clean in-memory channel layer per test."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer, channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings

from accounts.models import User
from accounts.scopes import grant_scopes
from accounts.tokens import ParleyRefreshToken

ORIGIN = (b"origin", b"http://localhost")
HOST = (b"host", b"localhost")


def make_communicator(
    path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> WebsocketCommunicator:
    from config.asgi import application

    return WebsocketCommunicator(
        application, path, headers=[ORIGIN, HOST] if headers is None else headers
    )


async def connect_authenticated(
    path: str, token: str, **auth: Any
) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    """Connect, send the auth frame, return the communicator and the auth.ok frame."""
    communicator = make_communicator(path)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "auth", "token": token, **auth})
    frame = await communicator.receive_json_from(timeout=5)
    assert frame["type"] == "auth.ok", frame
    return communicator, frame


async def answer(communicator: WebsocketCommunicator, frame: dict[str, Any]) -> dict[str, Any]:
    """Send a JSON frame; the JSON frame that comes next (its answer)."""
    await communicator.send_json_to(frame)
    reply: dict[str, Any] = await communicator.receive_json_from(timeout=5)
    return reply


async def still_answers(communicator: WebsocketCommunicator) -> None:
    """The socket is open and served: a ping gets its pong."""
    assert await answer(communicator, {"type": "ping"}) == {"type": "pong"}


async def next_output(communicator: WebsocketCommunicator, within: float = 5) -> dict[str, Any]:
    """The next thing the app did: a JSON frame (`{"frame": ...}`) or a close."""
    output = await communicator.receive_output(within)
    if output["type"] == "websocket.send":
        return {"frame": json.loads(output["text"])}
    return output


async def expect_close(communicator: WebsocketCommunicator, within: float = 5) -> int:
    """Skip frames until the app closes the socket; return the close code."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        output = await next_output(communicator, within=max(0.01, deadline - loop.time()))
        if output["type"] == "websocket.close":
            return int(output.get("code", 1000))


async def closed_after(path: str, first: dict[str, Any] | str) -> int:
    """The close code a fresh socket to `path` ends with after its first frame `first` (an
    object sent as JSON, or raw text), skipping any frames before the close."""
    communicator = make_communicator(path)
    connected, _ = await communicator.connect()
    assert connected
    if isinstance(first, str):
        await communicator.send_to(text_data=first)
    else:
        await communicator.send_json_to(first)
    code = await expect_close(communicator)
    await communicator.disconnect()
    return code


async def collect_until(
    communicator: WebsocketCommunicator,
    done: Callable[[list[dict[str, Any]]], bool],
    within: float = 5,
) -> list[dict[str, Any]]:
    """Frames received until `done(frames)` holds (fails on a close or after `within` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    frames: list[dict[str, Any]] = []
    while not done(frames):
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"condition not met within {within}s; got {frames}")
        output = await next_output(communicator, within=remaining)
        assert output.get("type") != "websocket.close", f"closed: {output}; got {frames}"
        frames.append(output["frame"])
    return frames


def messages_of(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["message"] for f in frames if f["type"] == "message"]


def seqs_of(frames: list[dict[str, Any]]) -> list[int]:
    return [m["seq"] for m in messages_of(frames)]


def access_token_for(
    user: User, *, lifetime: timedelta | None = None, scopes: set[str] | None = None
) -> str:
    """An access token like the API's, optionally with a shorter lifetime."""
    refresh = ParleyRefreshToken.for_user_with_scopes(user, grant_scopes(user, scopes))
    access = refresh.access_token
    if lifetime is not None:
        access.set_exp(from_time=access.current_time, lifetime=lifetime)
    return str(access)


_prefixed = False


def _own_channel_prefix() -> None:
    """On Redis, a channel prefix of this test run's own, for the whole session: Redis pub/sub
    ignores the database number, so another test run or a development server on the same Redis
    would otherwise hear our groups (`conversation.1` exists in every database). Set once,
    without a setting_changed signal, so the layer (and its connections) live for the session."""
    global _prefixed
    config = settings.CHANNEL_LAYERS["default"].get("CONFIG", {})
    if "prefix" in config and not _prefixed:
        config["prefix"] += f"test{uuid.uuid4().hex[:8]}"
        channel_layers.backends.clear()
    _prefixed = True


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Any:
    """The in-memory layer's queues belong to the event loop of the test that created them, and
    each async test has its own loop: a new layer object per test. (The Redis layer keeps one
    connection set per event loop by itself.)"""
    _own_channel_prefix()
    in_memory = isinstance(channel_layers.backends.get("default"), InMemoryChannelLayer)
    if in_memory or "default" not in channel_layers.backends:
        channel_layers.backends.clear()
    yield
    if isinstance(channel_layers.backends.get("default"), InMemoryChannelLayer):
        channel_layers.backends.clear()
