"""Signing in over `POST /auth/token` in tests, one spelling for every test that needs it."""

from __future__ import annotations

from typing import Any

from django.test import Client

from tests.factories import DEFAULT_PASSWORD

TOKEN = "/api/v1/auth/token"


def login(
    username: str, password: str = DEFAULT_PASSWORD, *, ip: str = "127.0.0.1", **body: Any
) -> Any:
    """`POST /auth/token` with a JSON body (`body`: further fields), from address `ip`."""
    return Client().post(
        TOKEN,
        {"username": username, "password": password, **body},
        content_type="application/json",
        REMOTE_ADDR=ip,
    )


def tokens_of(username: str = "alice") -> dict[str, Any]:
    """A successful sign-in's token pair (the body)."""
    response = login(username)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body
