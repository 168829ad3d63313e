"""Every tampered, expired, foreign or revoked credential is a 401 with WWW-Authenticate."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from accounts import services
from accounts.models import SecurityEvent, User
from tests.conftest import issue_access_token
from tests.logins import signed_in
from tests.tokens import access_claims, b64url, token_of

ME = "/api/v1/auth/me"


def _b64(data: dict[str, Any]) -> str:
    return b64url(json.dumps(data).encode())


def _get(headers: dict[str, str]) -> Any:
    return Client(headers=headers).get(ME)


def _assert_refused(response: Any, *, token_presented: bool = True) -> None:
    assert response.status_code == 401
    expected = 'Bearer error="invalid_token"' if token_presented else "Bearer"
    assert response["WWW-Authenticate"] == expected
    assert set(response.json()) == {"detail"}


@pytest.mark.django_db
def test_a_valid_token_is_accepted(customer: User) -> None:
    response = _get({"Authorization": f"Bearer {token_of(access_claims(customer))}"})
    assert response.status_code == 200
    assert response.json()["id"] == customer.pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(
            lambda u: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(access_claims(u))}.",
            id="alg-none",
        ),
        pytest.param(lambda u: token_of(access_claims(u), key="x" * 64), id="wrong-key"),
        pytest.param(lambda u: token_of(access_claims(u), algorithm="HS512"), id="right-key-HS512"),
        pytest.param(lambda u: token_of(access_claims(u), algorithm="HS384"), id="right-key-HS384"),
        pytest.param(
            lambda u: ".".join(
                [
                    token_of(access_claims(u)).split(".")[0],
                    _b64(access_claims(u, sub="999999")),
                    token_of(access_claims(u)).split(".")[2],
                ]
            ),
            id="payload-edited-after-signing",
        ),
        pytest.param(
            lambda u: token_of(
                access_claims(u, exp=int(time.time()) - 1, iat=int(time.time()) - 900)
            ),
            id="expired",
        ),
        pytest.param(lambda u: token_of(access_claims(u, sub="999999")), id="unknown-user"),
        pytest.param(lambda u: token_of(access_claims(u, token_type="refresh")), id="refresh-type"),
        pytest.param(lambda u: token_of(access_claims(u, iss="someone-else")), id="foreign-issuer"),
        pytest.param(
            lambda u: token_of(access_claims(u, aud="someone-else")), id="foreign-audience"
        ),
        pytest.param(lambda u: token_of(access_claims(u, iss=None)), id="missing-iss"),
        pytest.param(lambda u: token_of(access_claims(u, aud=None)), id="missing-aud"),
        pytest.param(lambda u: token_of(access_claims(u, jti=None)), id="missing-jti"),
        pytest.param(lambda u: token_of(access_claims(u, iat=None)), id="missing-iat"),
        pytest.param(lambda u: token_of(access_claims(u, exp=None)), id="missing-exp"),
        pytest.param(lambda u: token_of(access_claims(u, scope=None)), id="missing-scope"),
        pytest.param(lambda u: token_of(access_claims(u, token_type=None)), id="missing-type"),
        pytest.param(lambda u: token_of(access_claims(u, sub=None)), id="missing-sub"),
        pytest.param(
            lambda u: token_of(access_claims(u, pwf=None)), id="missing-password-fingerprint"
        ),
        pytest.param(lambda u: token_of(access_claims(u, fam=None)), id="missing-family"),
        pytest.param(lambda u: token_of(access_claims(u, fam=["x"])), id="non-string-family"),
        pytest.param(lambda u: token_of(access_claims(u, sub=u.pk)), id="integer-sub"),
        pytest.param(
            lambda u: token_of(access_claims(u, iat=int(time.time()) + 3600)), id="iat-in-future"
        ),
        pytest.param(
            lambda u: token_of(access_claims(u, nbf=int(time.time()) + 3600)), id="nbf-in-future"
        ),
        pytest.param(lambda u: "garbage", id="garbage"),
        pytest.param(lambda u: "a.b.c", id="three-garbage-segments"),
    ],
)
def test_tampered_token_is_refused(customer: User, make_token: Callable[[User], str]) -> None:
    _assert_refused(_get({"Authorization": f"Bearer {make_token(customer)}"}))


@pytest.mark.django_db
def test_inactive_user_is_refused(customer: User) -> None:
    token = issue_access_token(customer)
    customer.is_active = False
    customer.save(update_fields=["is_active"])
    _assert_refused(_get({"Authorization": f"Bearer {token}"}))


@pytest.mark.django_db
def test_deleted_user_is_refused(customer: User) -> None:
    token = issue_access_token(customer)
    customer.delete()
    _assert_refused(_get({"Authorization": f"Bearer {token}"}))


@pytest.mark.django_db
def test_refresh_token_used_as_access_token_is_refused(customer: User) -> None:
    pair = services.token_pair_issue(user=customer, requested_scopes=None)
    _assert_refused(_get({"Authorization": f"Bearer {pair.refresh_token}"}))


@pytest.mark.django_db
def test_revoked_access_token_is_refused(customer: User) -> None:
    token = issue_access_token(customer)
    client = Client(headers={"Authorization": f"Bearer {token}"})
    assert client.post("/api/v1/auth/revoke").status_code == 204
    _assert_refused(client.get(ME))
    # Another token of the same user is unaffected.
    assert _get({"Authorization": f"Bearer {issue_access_token(customer)}"}).status_code == 200


@pytest.mark.django_db
def test_password_change_revokes_earlier_tokens(customer: User) -> None:
    token = issue_access_token(customer)
    customer.set_password("a-whole-new-passphrase")
    customer.save()
    _assert_refused(_get({"Authorization": f"Bearer {token}"}))
    assert _get({"Authorization": f"Bearer {issue_access_token(customer)}"}).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("headers", "token_presented"),
    [
        pytest.param({}, False, id="no-credentials"),
        pytest.param({"Authorization": ""}, True, id="empty-authorization"),
        pytest.param({"Authorization": "Bearer"}, True, id="bearer-without-token"),
        pytest.param({"Authorization": "Bearer    "}, True, id="bearer-blank-token"),
        pytest.param({"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="}, True, id="basic-scheme"),
        pytest.param({"Authorization": "Token abc"}, True, id="other-scheme"),
        pytest.param({"Authorization": "\x01\x02garbage"}, True, id="garbage-header"),
        pytest.param({"X-API-Key": ""}, True, id="empty-api-key"),
        pytest.param({"X-API-Key": "prl_nope_nope"}, True, id="unknown-api-key"),
        pytest.param({"X-API-Key": "garbage"}, True, id="garbage-api-key"),
    ],
)
def test_missing_or_malformed_credentials_are_refused(
    headers: dict[str, str], token_presented: bool
) -> None:
    _assert_refused(_get(headers), token_presented=token_presented)


@pytest.mark.django_db
def test_token_in_query_string_authenticates_nothing(customer: User) -> None:
    token = issue_access_token(customer)
    response = Client().get(f"{ME}?access_token={token}&token={token}")
    _assert_refused(response, token_presented=False)


@pytest.mark.django_db
def test_admin_session_cookie_authenticates_nothing_on_the_api(superuser: User) -> None:
    client = signed_in(superuser)
    assert client.get("/admin/").status_code == 200  # the session is real
    _assert_refused(client.get(ME), token_presented=False)
    _assert_refused(client.get("/api/v1/api-keys"), token_presented=False)


@pytest.mark.django_db
def test_refused_token_is_recorded_as_security_event(customer: User) -> None:
    _get({"Authorization": "Bearer garbage", "X-Request-ID": "req-tampered-0001"})
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.AUTH_FAILED)
    assert event.path == ME
    assert event.request_id == "req-tampered-0001"
    assert event.level == "WARNING"
    assert event.ip == "127.0.0.1"
