"""A revoked session's sockets close (4401) within a second: revoking it, revoking all others,
changing the password; sockets of the sessions that stay open stay open (SPEC §4, §5). Here in
one process through the real ASGI application; tests/realtime/test_session_sockets_servers.py
holds the socket in another server process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.models import SignInSession, User
from tests.factories import DEFAULT_PASSWORD, ConversationFactory
from tests.realtime.conftest import closed_after, connect_authenticated, expect_close, still_answers

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

WITHIN_SECONDS = 1.0


@sync_to_async
def _sign_in(username: str = "alice") -> dict[str, Any]:
    response = Client().post(
        "/api/v1/auth/token",
        {"username": username, "password": DEFAULT_PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


@sync_to_async
def _call(tokens: dict[str, Any], method: str, path: str, body: Any = None) -> int:
    client = Client(headers={"Authorization": f"Bearer {tokens['access_token']}"})
    response = client.generic(
        method,
        path,
        b"" if body is None else json.dumps(body),
        content_type="application/json",
    )
    return int(response.status_code)


@sync_to_async
def _session_id(tokens: dict[str, Any]) -> int:
    family = jwt.decode(tokens["access_token"], options={"verify_signature": False})["fam"]
    return int(SignInSession.objects.get(family=family).pk)


@sync_to_async
def _conversation(customer: User) -> int:
    return int(ConversationFactory(customer=customer).pk)


async def _closes_4401_within(communicator: Any, started: float) -> None:
    code = await expect_close(communicator, within=WITHIN_SECONDS + 1)
    elapsed = time.monotonic() - started
    assert code == 4401
    assert elapsed < WITHIN_SECONDS, f"closed after {elapsed:.2f}s"


Tokens = dict[str, Any]


async def _revoke_that_session(revoked: list[Tokens], kept: Tokens) -> int:
    return await _call(kept, "DELETE", f"/api/v1/auth/sessions/{await _session_id(revoked[0])}")


async def _revoke_all_others(revoked: list[Tokens], kept: Tokens) -> int:
    return await _call(kept, "DELETE", "/api/v1/auth/sessions")


async def _change_the_password(revoked: list[Tokens], kept: Tokens) -> int:
    body = {"current_password": DEFAULT_PASSWORD, "new_password": "another-passphrase-2026"}
    return await _call(kept, "POST", "/api/v1/auth/password", body)


@pytest.mark.parametrize(
    ("revoke", "revoked_sessions"),
    [
        pytest.param(_revoke_that_session, 1, id="revoking-a-session"),
        pytest.param(_revoke_all_others, 2, id="revoking-all-others"),
        pytest.param(_change_the_password, 1, id="a-password-change"),
    ],
)
async def test_revoked_sessions_sockets_close_and_no_others(
    customer: User,
    revoke: Callable[[list[Tokens], Tokens], Awaitable[int]],
    revoked_sessions: int,
) -> None:
    """alice signs in `revoked_sessions` times, then once more (the session that stays); each
    session holds a socket; the last one makes the change."""
    conversation_id = await _conversation(customer)
    revoked = [await _sign_in() for _ in range(revoked_sessions)]
    kept = await _sign_in()
    path = f"/ws/conversations/{conversation_id}/"
    revoked_sockets = [(await connect_authenticated(path, t["access_token"]))[0] for t in revoked]
    kept_socket, _ = await connect_authenticated(path, kept["access_token"])
    try:
        started = time.monotonic()
        assert await revoke(revoked, kept) == 204
        for socket in revoked_sockets:
            await _closes_4401_within(socket, started)
        await still_answers(kept_socket)
    finally:
        for socket in [*revoked_sockets, kept_socket]:
            await socket.disconnect()


async def test_another_users_sockets_are_untouched(customer: User, other_customer: User) -> None:
    bobs_conversation = await _conversation(other_customer)
    bob = await _sign_in("bob")
    bob_socket, _ = await connect_authenticated(
        f"/ws/conversations/{bobs_conversation}/", bob["access_token"]
    )
    try:
        alice = await _sign_in()
        await _sign_in()
        assert await _call(alice, "DELETE", "/api/v1/auth/sessions") == 204
        await asyncio.sleep(0.3)
        await still_answers(bob_socket)
    finally:
        await bob_socket.disconnect()


@sync_to_async
def _staff_token(user: User, amr: tuple[str, ...]) -> str:
    from accounts.services import token_pair_issue

    return token_pair_issue(user=user, requested_scopes=None, amr=amr).access_token


async def test_the_staff_socket_refuses_a_token_without_otp(operator: User, settings: Any) -> None:

    settings.STAFF_MFA_REQUIRED = True
    token = await _staff_token(operator, ("pwd",))
    assert await closed_after("/ws/escalations/", {"type": "auth", "token": token}) == 4403
    with_otp, _ = await connect_authenticated(
        "/ws/escalations/", await _staff_token(operator, ("pwd", "otp"))
    )
    await with_otp.disconnect()
