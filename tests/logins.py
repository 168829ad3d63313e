"""Signing in, in tests, one spelling for every test that needs it: over `POST /auth/token`
(`login`, `tokens_of`), or to the admin site with a session (`signed_in`)."""

from __future__ import annotations

from typing import Any

from django.test import Client

from accounts.models import User
from tests.factories import DEFAULT_PASSWORD

TOKEN = "/api/v1/auth/token"


def login(
    username: str,
    password: str = DEFAULT_PASSWORD,
    *,
    ip: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    **body: Any,
) -> Any:
    """`POST /auth/token` with a JSON body (`body`: further fields), from address `ip`, with
    request `headers` (a User-Agent, say)."""
    return Client().post(
        TOKEN,
        {"username": username, "password": password, **body},
        content_type="application/json",
        headers=headers,
        REMOTE_ADDR=ip,
    )


def tokens_of(
    username: str = "alice",
    password: str = DEFAULT_PASSWORD,
    *,
    ip: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A successful sign-in's token pair (the body)."""
    response = login(username, password, ip=ip, headers=headers)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def signed_in(user: User) -> Client:
    """A test client holding a session of `user`, as a browser signed in to the admin site."""
    client = Client()
    client.force_login(user)
    return client
