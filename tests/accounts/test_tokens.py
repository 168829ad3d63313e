"""POST /auth/token, /auth/refresh, /auth/revoke and GET /auth/me."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test import Client
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import RevokedAccessToken, SecurityEvent, User
from tests.factories import DEFAULT_PASSWORD
from tests.logins import TOKEN, login

REFRESH = "/api/v1/auth/refresh"
REVOKE = "/api/v1/auth/revoke"
ME = "/api/v1/auth/me"


def _decode(token: str) -> dict[str, Any]:
    return jwt.decode(
        token, settings.JWT_SIGNING_KEY, algorithms=["HS256"], audience=settings.JWT_AUDIENCE
    )


@pytest.mark.django_db
def test_login_returns_token_pair_with_all_role_scopes(customer: User) -> None:
    response = login("alice")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == int(settings.ACCESS_TOKEN_MINUTES * 60)
    assert body["scope"] == "conversations:read messages:write"
    claims = _decode(body["access_token"])
    assert claims["sub"] == str(customer.pk)
    assert claims["token_type"] == "access"
    assert claims["iss"] == "parley"
    assert claims["aud"] == "parley"
    assert claims["scope"] == "conversations:read messages:write"
    assert {"jti", "iat", "exp"} <= set(claims)
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"


@pytest.mark.django_db
def test_login_is_case_insensitive_on_username(customer: User) -> None:
    assert login("ALICE").status_code == 200


@pytest.mark.django_db
def test_login_accepts_oauth2_password_form(customer: User) -> None:
    response = Client().post(
        TOKEN,
        "grant_type=password&username=alice&password="
        + DEFAULT_PASSWORD
        + "&scope=conversations%3Aread",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "conversations:read"


@pytest.mark.django_db
def test_login_form_without_password_grant_is_422(customer: User) -> None:
    response = Client().post(
        TOKEN,
        f"grant_type=client_credentials&username=alice&password={DEFAULT_PASSWORD}",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 422


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong-password"), ("nobody", DEFAULT_PASSWORD), ("alice", " ")],
)
def test_bad_credentials_are_401(customer: User, username: str, password: str) -> None:
    response = login(username, password)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid username or password"}
    assert response["WWW-Authenticate"] == "Bearer"
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.LOGIN_FAILED).count() == 1


@pytest.mark.django_db
def test_inactive_user_cannot_log_in(customer: User) -> None:
    customer.is_active = False
    customer.save()
    assert login("alice").status_code == 401


@pytest.mark.django_db
def test_login_with_unknown_field_is_422(customer: User) -> None:
    assert login("alice", is_staff=True).status_code == 422


@pytest.mark.django_db
def test_login_with_unsupported_media_type_is_415(customer: User) -> None:
    response = Client().post(TOKEN, "alice", content_type="text/plain")
    assert response.status_code == 415


@pytest.mark.django_db
def test_requested_scopes_are_intersected_with_the_role(customer: User) -> None:
    response = login("alice", scope="conversations:read escalations:manage admin")
    assert response.status_code == 200
    assert response.json()["scope"] == "conversations:read"
    assert _decode(response.json()["access_token"])["scope"] == "conversations:read"


@pytest.mark.django_db
def test_customer_asking_only_for_staff_scopes_gets_none(customer: User) -> None:
    response = login("alice", scope="escalations:manage stats:read admin")
    assert response.status_code == 200
    assert response.json()["scope"] == ""
    token = response.json()["access_token"]
    me = Client(headers={"Authorization": f"Bearer {token}"}).get(ME)
    assert me.json()["scopes"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("make_user", "expected"),
    [
        ("customer", "conversations:read messages:write"),
        ("operator", "conversations:read messages:write escalations:manage stats:read"),
        ("superuser", "conversations:read messages:write escalations:manage stats:read admin"),
    ],
)
def test_each_role_gets_its_scopes(request: Any, make_user: str, expected: str) -> None:
    user = request.getfixturevalue(make_user)
    assert login(user.username).json()["scope"] == expected


@pytest.mark.django_db
def test_me_describes_the_caller(customer_client: Client, customer: User) -> None:
    assert customer_client.get(ME).json() == {
        "id": customer.pk,
        "username": "alice",
        "email": "alice@example.com",
        "is_staff": False,
        "is_superuser": False,
        "scopes": ["conversations:read", "messages:write"],
        "mfa": {"totp": False, "recovery_codes_left": 0},
    }


@pytest.mark.django_db
def test_refresh_rotates_and_old_refresh_token_is_refused(customer: User) -> None:
    first = login("alice", scope="conversations:read").json()
    response = Client().post(
        REFRESH, {"refresh_token": first["refresh_token"]}, content_type="application/json"
    )
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "conversations:read"
    assert (
        Client(headers={"Authorization": f"Bearer {second['access_token']}"}).get(ME).status_code
        == 200
    )
    reused = Client().post(
        REFRESH, {"refresh_token": first["refresh_token"]}, content_type="application/json"
    )
    assert reused.status_code == 401
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.REFRESH_REUSED).count() == 1
    assert BlacklistedToken.objects.count() == 1


@pytest.mark.django_db
def test_refresh_with_an_access_token_is_401(customer: User) -> None:
    access = login("alice").json()["access_token"]
    response = Client().post(REFRESH, {"refresh_token": access}, content_type="application/json")
    assert response.status_code == 401


@pytest.mark.django_db
def test_refresh_narrows_scopes_after_demotion(operator: User) -> None:
    pair = login("olivia").json()
    operator.is_staff = False
    operator.save()
    response = Client().post(
        REFRESH, {"refresh_token": pair["refresh_token"]}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "conversations:read messages:write"


@pytest.mark.django_db
def test_refresh_after_password_change_is_401(customer: User) -> None:
    pair = login("alice").json()
    customer.set_password("another-long-passphrase")
    customer.save()
    response = Client().post(
        REFRESH, {"refresh_token": pair["refresh_token"]}, content_type="application/json"
    )
    assert response.status_code == 401


@pytest.mark.django_db
def test_database_never_holds_a_usable_refresh_token(customer: User) -> None:
    pair = login("alice").json()
    stored = OutstandingToken.objects.get()
    assert stored.token != pair["refresh_token"]
    assert pair["refresh_token"] not in stored.token


@pytest.mark.django_db
def test_revoke_blacklists_own_refresh_token_and_access_token(customer: User) -> None:
    pair = login("alice").json()
    client = Client(headers={"Authorization": f"Bearer {pair['access_token']}"})
    response = client.post(
        REVOKE, {"refresh_token": pair["refresh_token"]}, content_type="application/json"
    )
    assert response.status_code == 204
    assert RevokedAccessToken.objects.filter(user=customer).count() == 1
    assert client.get(ME).status_code == 401
    refreshed = Client().post(
        REFRESH, {"refresh_token": pair["refresh_token"]}, content_type="application/json"
    )
    assert refreshed.status_code == 401
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.TOKEN_REVOKED).count() == 1


@pytest.mark.django_db
def test_revoke_ignores_someone_elses_refresh_token(customer: User, other_customer: User) -> None:
    victim = login("bob").json()
    attacker = login("alice").json()
    response = Client(headers={"Authorization": f"Bearer {attacker['access_token']}"}).post(
        REVOKE, {"refresh_token": victim["refresh_token"]}, content_type="application/json"
    )
    assert response.status_code == 204
    assert BlacklistedToken.objects.count() == 0
    still_works = Client().post(
        REFRESH, {"refresh_token": victim["refresh_token"]}, content_type="application/json"
    )
    assert still_works.status_code == 200


@pytest.mark.django_db
def test_revoke_requires_authentication() -> None:
    response = Client().post(REVOKE)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.django_db
def test_revoke_with_unknown_field_is_422(customer_client: Client) -> None:
    response = customer_client.post(REVOKE, {"everything": True}, content_type="application/json")
    assert response.status_code == 422
