"""accounts.auth caches the checks of an access token that do not depend on the clock; every
rule that does (expiry) or that reads the database (revocation, the user, the password) still
applies on every use of a cached token."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from django.conf import settings

from accounts import auth
from accounts.models import User
from accounts.services import token_pair_issue
from core.errors import NotAuthenticated

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    auth._verified_access_payload.cache_clear()
    yield
    auth._verified_access_payload.cache_clear()


def _access(user: User) -> str:
    return token_pair_issue(user=user, requested_scopes=None).access_token


def test_second_use_is_served_from_the_cache(customer: User) -> None:
    token = _access(customer)
    assert auth.principal_from_access_token(token).user_id == customer.pk
    assert auth.principal_from_access_token(token).user_id == customer.pk
    info = auth._verified_access_payload.cache_info()
    assert (info.hits, info.misses) == (1, 1)


def test_cached_token_is_refused_once_expired(customer: User, monkeypatch) -> None:
    token = _access(customer)
    auth.principal_from_access_token(token)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: exp + 1))

    with pytest.raises(NotAuthenticated, match="expired"):
        auth.principal_from_access_token(token)
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: exp - 1))
    assert auth.principal_from_access_token(token).user_id == customer.pk


def test_cached_token_is_refused_after_revocation(customer: User) -> None:
    from accounts.services import token_revoke

    token = _access(customer)
    principal = auth.principal_from_access_token(token)
    token_revoke(principal=principal, raw_refresh=None)

    with pytest.raises(NotAuthenticated, match="revoked"):
        auth.principal_from_access_token(token)


def test_cached_token_is_refused_after_deactivation_or_password_change(customer: User) -> None:
    token = _access(customer)
    auth.principal_from_access_token(token)
    customer.set_password("an entirely new passphrase 42")
    customer.save()
    with pytest.raises(NotAuthenticated, match="password"):
        auth.principal_from_access_token(token)

    token = _access(customer)
    auth.principal_from_access_token(token)
    User.objects.filter(pk=customer.pk).update(is_active=False)
    with pytest.raises(NotAuthenticated, match="inactive"):
        auth.principal_from_access_token(token)


def test_invalid_tokens_are_never_cached(customer: User) -> None:
    token = _access(customer)
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for _ in range(3):
        with pytest.raises(NotAuthenticated):
            auth.principal_from_access_token(tampered)
    assert auth._verified_access_payload.cache_info().currsize == 0
    assert time.time() < jwt.decode(token, options={"verify_signature": False})["exp"]
    assert settings.SIMPLE_JWT["ALGORITHM"] == "HS256"


def test_the_password_fingerprint_is_cached_per_hash_and_key(customer: User, settings: Any) -> None:
    """The fingerprint each request compares is computed once per password hash and signing
    key: a new password or a new SECRET_KEY gives a new one at once (never a stale hit)."""
    from accounts import tokens

    tokens._fingerprint.cache_clear()
    token = _access(customer)
    first = tokens.password_fingerprint(customer)
    assert auth.principal_from_access_token(token).user_id == customer.pk
    assert tokens._fingerprint.cache_info().hits >= 1

    customer.set_password("a brand new passphrase 42")
    customer.save()
    assert tokens.password_fingerprint(customer) != first
    with pytest.raises(NotAuthenticated, match="last password change"):
        auth.principal_from_access_token(token)

    fingerprint = tokens.password_fingerprint(customer)
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert tokens.password_fingerprint(customer) != fingerprint
