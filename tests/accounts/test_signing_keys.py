"""Signing-key rotation (SPEC §4): JWT_SIGNING_KEYS, the first signs, all verify; every token's
header names its key by a `kid` derived from it; a `kid` naming no configured key is refused;
retiring a key ends its tokens; rotating signs nobody out. Also the per-process cache of
verified tokens (accounts.auth) under several keys."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from django.test import Client

from accounts.models import User
from accounts.signing import key_id
from tests.logins import tokens_of
from tests.tokens import access_claims, b64url, signed

ME = "/api/v1/auth/me"
OLD_KEY = "old-signing-key-" + "o" * 32
NEW_KEY = "new-signing-key-" + "n" * 32


def me(access: str) -> Any:
    return Client(headers={"Authorization": f"Bearer {access}"}).get(ME)


def refresh(raw: str) -> Any:
    return Client().post(
        "/api/v1/auth/refresh", {"refresh_token": raw}, content_type="application/json"
    )


def header(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)  # type: ignore[no-any-return]


@pytest.mark.django_db
def test_every_token_names_its_key_without_revealing_it(customer: User, settings: Any) -> None:
    settings.JWT_SIGNING_KEYS = [OLD_KEY]
    tokens = tokens_of()
    for token in (tokens["access_token"], tokens["refresh_token"]):
        kid = header(token)["kid"]
        assert kid == key_id(OLD_KEY)
        assert OLD_KEY not in kid
        assert kid not in OLD_KEY
        assert header(token)["alg"] == "HS256"
        # Signed with that key.
        jwt.decode(token, OLD_KEY, algorithms=["HS256"], audience=settings.JWT_AUDIENCE)
    assert key_id(OLD_KEY) != key_id(NEW_KEY)


@pytest.mark.django_db
def test_rotating_signs_no_one_out(customer: User, settings: Any) -> None:
    settings.JWT_SIGNING_KEYS = [OLD_KEY]
    before = tokens_of()
    assert me(before["access_token"]).status_code == 200
    settings.JWT_SIGNING_KEYS = [NEW_KEY, OLD_KEY]  # the new key signs, the old one verifies
    assert me(before["access_token"]).status_code == 200
    rotated = refresh(before["refresh_token"])
    assert rotated.status_code == 200
    assert header(rotated.json()["access_token"])["kid"] == key_id(NEW_KEY)
    after = tokens_of()
    assert header(after["access_token"])["kid"] == key_id(NEW_KEY)
    assert me(after["access_token"]).status_code == 200


@pytest.mark.django_db
def test_retiring_a_key_stops_its_tokens(customer: User, settings: Any) -> None:
    settings.JWT_SIGNING_KEYS = [NEW_KEY, OLD_KEY]
    settings.JWT_SIGNING_KEYS = [OLD_KEY]
    old = tokens_of()
    # Verified once, so the per-process cache holds it.
    assert me(old["access_token"]).status_code == 200
    settings.JWT_SIGNING_KEYS = [NEW_KEY, OLD_KEY]
    new = tokens_of()
    settings.JWT_SIGNING_KEYS = [NEW_KEY]  # the old key retired
    refused = me(old["access_token"])
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert refresh(old["refresh_token"]).status_code == 401
    assert me(new["access_token"]).status_code == 200


def _forged(user: User, *, kid: str | None, key: str) -> str:
    return signed(access_claims(user, jti="k" * 32, scope="conversations:read"), key, kid=kid)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kid",
    [
        pytest.param(None, id="no-kid"),
        pytest.param("no-such-key-id", id="unknown-kid"),
        pytest.param(key_id("a-key-that-was-never-configured-0000000000"), id="foreign-kid"),
        pytest.param(OLD_KEY, id="the-key-itself-as-kid"),
        pytest.param("", id="empty-kid"),
    ],
)
def test_a_kid_naming_no_configured_key_is_401(
    customer: User, settings: Any, kid: str | None
) -> None:
    settings.JWT_SIGNING_KEYS = [OLD_KEY]
    # Signed with the right key: only the kid is wrong.
    response = me(_forged(customer, kid=kid, key=OLD_KEY))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.django_db
def test_a_kid_of_one_key_with_another_keys_signature_is_401(customer: User, settings: Any) -> None:
    settings.JWT_SIGNING_KEYS = [NEW_KEY, OLD_KEY]
    assert me(_forged(customer, kid=key_id(NEW_KEY), key=NEW_KEY)).status_code == 200
    assert me(_forged(customer, kid=key_id(NEW_KEY), key=OLD_KEY)).status_code == 401
    assert me(_forged(customer, kid=key_id(OLD_KEY), key=OLD_KEY)).status_code == 200


@pytest.mark.django_db
def test_a_non_string_kid_is_401(customer: User, settings: Any) -> None:
    settings.JWT_SIGNING_KEYS = [OLD_KEY]

    valid = _forged(customer, kid=key_id(OLD_KEY), key=OLD_KEY)
    _header, payload, _signature = valid.split(".")
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": [key_id(OLD_KEY)]}).encode())
    signature = hmac.new(OLD_KEY.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    assert me(f"{head}.{payload}.{b64url(signature)}").status_code == 401
