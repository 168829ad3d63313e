"""Sessions (one per sign-in, i.e. per refresh-token family) and the password change (SPEC §4
"Accounts, factors and sessions")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.test import Client

from accounts.models import RevokedTokenFamily, SecurityEvent, SignInSession, User
from tests.factories import DEFAULT_PASSWORD
from tests.logins import login, signed_in, tokens_of

REFRESH = "/api/v1/auth/refresh"
SESSIONS = "/api/v1/auth/sessions"
PASSWORD = "/api/v1/auth/password"
ME = "/api/v1/auth/me"
NEW_PASSWORD = "a-brand-new-passphrase-2026"

pytestmark = pytest.mark.django_db


def bearer(tokens: dict[str, Any]) -> Client:
    return Client(headers={"Authorization": f"Bearer {tokens['access_token']}"})


def refresh(tokens: dict[str, Any]) -> Any:
    return Client().post(
        REFRESH, {"refresh_token": tokens["refresh_token"]}, content_type="application/json"
    )


def family(tokens: dict[str, Any]) -> str:
    return str(jwt.decode(tokens["access_token"], options={"verify_signature": False})["fam"])


def test_sessions_lists_each_sign_in_with_the_current_one_marked(customer: User) -> None:
    first = tokens_of(ip="10.1.1.1", headers={"User-Agent": "Phone/1.0"})
    second = tokens_of(ip="10.2.2.2", headers={"User-Agent": "Laptop/2.0"})
    response = bearer(second).get(SESSIONS)
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 2
    by_agent = {item["user_agent"]: item for item in items}
    assert set(by_agent) == {"Phone/1.0", "Laptop/2.0"}
    assert by_agent["Laptop/2.0"]["current"] is True
    assert by_agent["Phone/1.0"]["current"] is False
    assert by_agent["Laptop/2.0"]["ip"] == "10.2.2.2"
    assert by_agent["Phone/1.0"]["ip"] == "10.1.1.1"
    assert by_agent["Phone/1.0"]["amr"] == ["pwd"]
    assert set(items[0]) == {
        "id",
        "created_at",
        "last_used_at",
        "ip",
        "user_agent",
        "amr",
        "current",
    }
    ids = {s.family: s.pk for s in SignInSession.objects.filter(user=customer)}
    assert by_agent["Phone/1.0"]["id"] == ids[family(first)]


def test_a_refresh_stays_in_its_session_and_updates_last_use(customer: User) -> None:
    tokens = tokens_of()
    before = SignInSession.objects.get(user=customer)
    rotated = refresh(tokens).json()
    after = SignInSession.objects.get(user=customer)
    assert SignInSession.objects.filter(user=customer).count() == 1
    assert after.last_used_at >= before.last_used_at
    items = bearer(rotated).get(SESSIONS).json()["items"]
    assert [item["current"] for item in items] == [True]


def test_sessions_lists_only_the_callers(customer: User, other_customer: User) -> None:
    tokens_of("bob")
    items = bearer(tokens_of()).get(SESSIONS).json()["items"]
    assert len(items) == 1


def test_revoking_a_session_stops_its_refresh_and_access_tokens_at_once(customer: User) -> None:
    phone = tokens_of()
    laptop = tokens_of()
    phone_session = SignInSession.objects.get(family=family(phone))
    response = bearer(laptop).delete(f"{SESSIONS}/{phone_session.pk}")
    assert response.status_code == 204
    assert bearer(phone).get(ME).status_code == 401
    assert refresh(phone).status_code == 401
    assert bearer(laptop).get(ME).status_code == 200
    assert RevokedTokenFamily.objects.filter(family=family(phone)).exists()
    assert [item["current"] for item in bearer(laptop).get(SESSIONS).json()["items"]] == [True]
    event = SecurityEvent.objects.get(kind="session_revoked")
    assert event.user == customer
    assert event.detail["session_id"] == phone_session.pk


def test_another_users_session_id_is_404_and_nothing_changes(
    customer: User, other_customer: User
) -> None:
    bobs = tokens_of("bob")
    bobs_session = SignInSession.objects.get(user=other_customer)
    response = bearer(tokens_of()).delete(f"{SESSIONS}/{bobs_session.pk}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Session not found"}
    bobs_session.refresh_from_db()
    assert bobs_session.revoked_at is None
    assert not RevokedTokenFamily.objects.exists()
    assert bearer(bobs).get(ME).status_code == 200
    # A missing id looks the same.
    assert bearer(tokens_of()).delete(f"{SESSIONS}/999999").status_code == 404


def test_revoking_all_others_keeps_the_callers(customer: User) -> None:
    others = [tokens_of() for _ in range(3)]
    mine = tokens_of()
    response = bearer(mine).delete(SESSIONS)
    assert response.status_code == 204
    assert all(bearer(tokens).get(ME).status_code == 401 for tokens in others)
    assert bearer(mine).get(ME).status_code == 200
    assert refresh(mine).status_code == 200
    assert SecurityEvent.objects.filter(kind="session_revoked").count() == 3


def test_revoking_ones_own_session_signs_out(customer: User) -> None:
    mine = tokens_of()
    session = SignInSession.objects.get(family=family(mine))
    assert bearer(mine).delete(f"{SESSIONS}/{session.pk}").status_code == 204
    assert bearer(mine).get(ME).status_code == 401


def test_a_body_on_the_session_deletes_is_refused(customer: User) -> None:
    mine = tokens_of()
    other = tokens_of()
    response = bearer(mine).generic(
        "DELETE", SESSIONS, b'{"x": 1}', content_type="application/json"
    )
    assert response.status_code == 422
    assert bearer(other).get(ME).status_code == 200


# --- Password change ------------------------------------------------------------------------------


def test_password_change_revokes_every_other_session_and_keeps_the_callers(customer: User) -> None:
    other = tokens_of()
    mine = tokens_of()
    response = bearer(mine).post(
        PASSWORD,
        {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 204
    assert bearer(other).get(ME).status_code == 401
    assert refresh(other).status_code == 401
    # The caller's session goes on: its access token now, its refresh token, the next pair.
    assert bearer(mine).get(ME).status_code == 200
    rotated = refresh(mine)
    assert rotated.status_code == 200
    assert bearer(rotated.json()).get(ME).status_code == 200
    # The new password signs in; the old one does not.
    tokens_of(password=NEW_PASSWORD)
    assert login("alice").status_code == 401
    assert SecurityEvent.objects.filter(kind="password_changed", user=customer).count() == 1


def test_password_change_applies_the_validators(customer: User) -> None:
    mine = tokens_of()
    response = bearer(mine).post(
        PASSWORD,
        {"current_password": DEFAULT_PASSWORD, "new_password": "123"},
        content_type="application/json",
    )
    assert response.status_code == 422
    customer.refresh_from_db()
    assert customer.check_password(DEFAULT_PASSWORD)


def test_wrong_current_password_is_403_and_counts_against_sign_in(
    customer: User, settings: Any
) -> None:
    settings.RATE_LIMIT_LOGIN = "3/m"
    other = tokens_of()  # 1 of 3 (per username)
    client = bearer(tokens_of())  # 2 of 3
    wrong = {"current_password": "not-it", "new_password": NEW_PASSWORD}
    response = client.post(PASSWORD, wrong, content_type="application/json")
    assert response.status_code == 403
    # 3 of 3: the budget is spent, for this route and for signing in alike.
    limited = client.post(PASSWORD, wrong, content_type="application/json")
    assert limited.status_code == 429
    right = {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD}
    assert client.post(PASSWORD, right, content_type="application/json").status_code == 429
    assert login("alice").status_code == 429
    customer.refresh_from_db()
    assert customer.check_password(DEFAULT_PASSWORD)
    assert bearer(other).get(ME).status_code == 200


def test_a_right_current_password_costs_no_sign_in_budget(customer: User, settings: Any) -> None:
    settings.RATE_LIMIT_LOGIN = "2/m"
    client = bearer(tokens_of())  # 1 of 2
    right = {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD}
    assert client.post(PASSWORD, right, content_type="application/json").status_code == 204
    tokens_of(password=NEW_PASSWORD)  # 2 of 2: still allowed


def test_a_session_ends_at_its_absolute_lifetime_however_often_refreshed(
    customer: User, settings: Any
) -> None:
    settings.SESSION_MAX_DAYS = 30
    tokens = tokens_of()
    session = SignInSession.objects.get(family=family(tokens))
    SignInSession.objects.filter(pk=session.pk).update(
        created_at=session.created_at - timedelta(days=29, hours=23)
    )
    tokens = refresh(tokens).json()  # still within the 30 days
    SignInSession.objects.filter(pk=session.pk).update(
        created_at=session.created_at - timedelta(days=30, seconds=1)
    )
    response = refresh(tokens)
    assert response.status_code == 401


def test_a_superuser_signs_a_user_out_everywhere(customer: User, superuser: User) -> None:
    phone, laptop = tokens_of(), tokens_of()
    admin = signed_in(superuser)
    response = admin.post(
        "/admin/accounts/user/",
        {"action": "sign_out_everywhere", "_selected_action": [customer.pk]},
    )
    assert response.status_code == 302
    assert bearer(phone).get(ME).status_code == 401
    assert bearer(laptop).get(ME).status_code == 401
    assert refresh(laptop).status_code == 401
    assert SecurityEvent.objects.filter(kind="session_revoked", user=customer).count() == 2


def test_expired_sessions_are_pruned(customer: User, settings: Any) -> None:
    from django.utils import timezone

    from accounts import services

    tokens_of()
    services.expired_tokens_prune(now=timezone.now() + timedelta(days=1))
    assert SignInSession.objects.count() == 1
    services.expired_tokens_prune(
        now=timezone.now() + timedelta(days=settings.REFRESH_TOKEN_DAYS, minutes=1)
    )
    assert SignInSession.objects.count() == 0
