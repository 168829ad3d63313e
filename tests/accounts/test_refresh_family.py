"""Refresh-token reuse revokes the family (SPEC §4 Auth), and /auth/refresh is rate limited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.auth import principal_from_access_token
from accounts.models import RevokedTokenFamily, SecurityEvent, User
from tests.logins import tokens_of

REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"


def _refresh(raw: str, ip: str = "127.0.0.1") -> Any:
    return Client().post(
        REFRESH, {"refresh_token": raw}, content_type="application/json", REMOTE_ADDR=ip
    )


def _me(access: str) -> int:
    return Client(headers={"Authorization": f"Bearer {access}"}).get(ME).status_code


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(
        token, settings.JWT_SIGNING_KEY, algorithms=["HS256"], audience=settings.JWT_AUDIENCE
    )


@pytest.mark.django_db
def test_rotation_keeps_the_family(customer: User) -> None:
    first = tokens_of()
    second = _refresh(first["refresh_token"]).json()

    family = _claims(first["refresh_token"])["fam"]
    assert _claims(first["access_token"])["fam"] == family
    assert _claims(second["refresh_token"])["fam"] == family
    assert _claims(second["access_token"])["fam"] == family
    assert _claims(tokens_of()["refresh_token"])["fam"] != family  # a new sign-in, a new family


@pytest.mark.django_db
def test_reusing_a_rotated_token_revokes_the_newest_pair(customer: User) -> None:
    first = tokens_of()
    second = _refresh(first["refresh_token"]).json()
    third = _refresh(second["refresh_token"]).json()
    assert _me(third["access_token"]) == 200

    reused = _refresh(first["refresh_token"])  # a stolen copy of a rotated token

    assert reused.status_code == 401
    assert _refresh(third["refresh_token"]).status_code == 401
    assert _me(third["access_token"]) == 401
    assert _me(second["access_token"]) == 401
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.REFRESH_REUSED)
    assert event.user == customer
    assert event.detail == {"family_revoked": True, "already_revoked": False}


@pytest.mark.django_db(transaction=True)  # committed: a dangling foreign key would fail here
def test_reuse_after_the_account_was_deleted_outside_erasure_is_a_401(customer: User) -> None:
    """An account removed without the erasure service (the shell, a raw delete) leaves its
    rotated refresh tokens signed and blacklisted: presenting one is still reuse, answered 401,
    and recorded without a user, since there is none left to name or to revoke for."""
    first = tokens_of()
    second = _refresh(first["refresh_token"]).json()
    User.objects.filter(pk=customer.pk).delete()

    reused = _refresh(first["refresh_token"])
    current = _refresh(second["refresh_token"])

    assert (reused.status_code, current.status_code) == (401, 401)
    assert RevokedTokenFamily.objects.count() == 0
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.REFRESH_REUSED)
    assert event.user_id is None
    assert event.detail == {"family_revoked": False, "already_revoked": False}


@pytest.mark.django_db
def test_other_sign_ins_of_the_same_user_keep_working(customer: User) -> None:
    stolen = tokens_of()
    other_device = tokens_of()
    _refresh(stolen["refresh_token"])

    _refresh(stolen["refresh_token"])  # reuse

    assert _me(other_device["access_token"]) == 200
    assert _refresh(other_device["refresh_token"]).status_code == 200


@pytest.mark.django_db
def test_a_forged_rotated_token_revokes_nothing(customer: User) -> None:
    pair = tokens_of()
    _refresh(pair["refresh_token"])
    claims = _claims(pair["refresh_token"])
    forged = jwt.encode({**claims, "fam": "someone-else"}, "x" * 64, algorithm="HS256")

    assert _refresh(forged).status_code == 401
    assert RevokedTokenFamily.objects.count() == 0


@pytest.mark.django_db
def test_revoked_family_check_costs_no_extra_query(
    customer: User, django_assert_num_queries: Any
) -> None:
    access = services.token_pair_issue(user=customer, requested_scopes=None).access_token

    with django_assert_num_queries(1):
        principal_from_access_token(access)


@pytest.mark.django_db
def test_expired_family_rows_are_pruned(customer: User) -> None:
    pair = tokens_of()
    _refresh(pair["refresh_token"])
    _refresh(pair["refresh_token"])
    assert RevokedTokenFamily.objects.count() == 1

    services.expired_tokens_prune(
        now=timezone.now() + timedelta(days=settings.REFRESH_TOKEN_DAYS, minutes=1)
    )

    assert RevokedTokenFamily.objects.count() == 0


@pytest.mark.django_db
def test_refresh_is_rate_limited_per_ip(settings: Any, customer: User) -> None:
    settings.RATE_LIMIT_REFRESH = "3/m"
    for _ in range(3):
        assert _refresh("not-a-token", ip="10.8.0.1").status_code == 401

    limited = _refresh(tokens_of()["refresh_token"], ip="10.8.0.1")

    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert limited["RateLimit-Limit"] == "3"
    assert limited["RateLimit-Remaining"] == "0"
    assert _refresh(tokens_of()["refresh_token"], ip="10.8.0.2").status_code == 200


@pytest.mark.django_db
def test_successful_refresh_carries_rate_limit_headers(settings: Any, customer: User) -> None:
    settings.RATE_LIMIT_REFRESH = "30/m"

    response = _refresh(tokens_of()["refresh_token"])

    assert response.status_code == 200
    assert response["RateLimit-Limit"] == "30"
    assert response["RateLimit-Remaining"] == "29"
