"""The second factor over the API (SPEC §4 "Accounts, factors and sessions"): TOTP enrolment
with recovery codes, the two-step sign-in with an mfa_token, replay refusal, the throttles, amr
in the tokens, staff enrolment required, and the security events."""

from __future__ import annotations

import re
import time
from typing import Any
from unittest import mock

import jwt
import pyotp
import pytest
from django.test import Client
from django.utils import timezone

from accounts import mfa
from accounts.models import RecoveryCode, SecurityEvent, SignInSession, TotpDevice, User
from tests.factories import DEFAULT_PASSWORD, OperatorFactory
from tests.logins import login
from tests.messages import post_message

TOKEN_MFA = "/api/v1/auth/token/mfa"
TOTP = "/api/v1/auth/mfa/totp"
CONFIRM = "/api/v1/auth/mfa/totp/confirm"
ME = "/api/v1/auth/me"


def post(client: Client, path: str, body: dict[str, Any], **extra: Any) -> Any:
    return client.post(path, body, content_type="application/json", **extra)


def bearer(access_token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {access_token}"})


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def code_at(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + offset_steps * 30)


def enrol(client: Client) -> tuple[str, list[str]]:
    """Enrol TOTP for the client's user: the secret and the recovery codes."""
    started = post(client, TOTP, {"password": DEFAULT_PASSWORD})
    assert started.status_code == 201, started.content
    secret = started.json()["secret"]
    confirmed = post(client, CONFIRM, {"code": code_at(secret)})
    assert confirmed.status_code == 200, confirmed.content
    return secret, confirmed.json()["recovery_codes"]


def enrolled(user: User, *, last_step_offset: int = -5) -> str:
    """A confirmed factor for `user` set up through the services; its secret. The last used
    step lies in the past, so the current code is accepted."""
    secret = mfa.totp_enrolment_start(user=user).secret
    device = TotpDevice.objects.get(user=user)
    device.confirmed_at = timezone.now()
    device.last_used_step = pyotp.TOTP(secret).timecode(timezone.now()) + last_step_offset
    device.save()
    return secret


def second_step(mfa_token: str, code: str, **extra: Any) -> Any:
    """`POST /auth/token/mfa`: the sign-in's second step."""
    return post(Client(), TOKEN_MFA, {"mfa_token": mfa_token, "code": code}, **extra)


def mfa_token_for(username: str) -> str:
    response = login(username)
    assert response.status_code == 401, response.content
    return str(response.json()["mfa_token"])


# --- Enrolment -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_enrolment_returns_a_secret_and_otpauth_uri_not_yet_active(
    customer: User, customer_client: Client
) -> None:
    response = post(customer_client, TOTP, {"password": DEFAULT_PASSWORD})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"secret", "otpauth_uri"}
    assert len(body["secret"]) == 32
    assert pyotp.TOTP(body["secret"]).byte_secret()  # valid base32
    assert body["otpauth_uri"] == pyotp.TOTP(body["secret"]).provisioning_uri(
        name="alice", issuer_name="Parley"
    )
    # Not active yet: /me says so and signing in still gives tokens.
    assert customer_client.get(ME).json()["mfa"] == {"totp": False, "recovery_codes_left": 0}
    assert login("alice").status_code == 200


@pytest.mark.django_db
def test_enrolment_needs_the_password(customer: User, customer_client: Client) -> None:
    response = post(customer_client, TOTP, {"password": "wrong-password"})
    assert response.status_code == 403
    assert not TotpDevice.objects.filter(user=customer).exists()


@pytest.mark.django_db
def test_confirm_activates_returns_ten_codes_and_revokes_other_sessions(
    customer: User,
) -> None:
    other_session = login("alice").json()
    this_session = login("alice").json()
    client = bearer(this_session["access_token"])
    secret, codes = enrol(client)

    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){6}", code) for code in codes)
    # Stored hashed: no code in clear in the table.
    stored = list(RecoveryCode.objects.filter(user=customer).values_list("code_hash", flat=True))
    assert len(stored) == 10
    assert not {code.replace("-", "") for code in codes} & set(stored)
    assert client.get(ME).json()["mfa"] == {"totp": True, "recovery_codes_left": 10}
    # The session that enrolled goes on; the other one is over.
    assert bearer(other_session["access_token"]).get(ME).status_code == 401
    refreshed = post(
        Client(), "/api/v1/auth/refresh", {"refresh_token": other_session["refresh_token"]}
    )
    assert refreshed.status_code == 401
    assert SecurityEvent.objects.filter(kind="mfa_enabled", user=customer).count() == 1


@pytest.mark.django_db
def test_confirm_with_a_wrong_code_changes_nothing(customer: User, customer_client: Client) -> None:
    secret = post(customer_client, TOTP, {"password": DEFAULT_PASSWORD}).json()["secret"]
    wrong = str((int(code_at(secret)) + 1) % 1_000_000).zfill(6)
    response = post(customer_client, CONFIRM, {"code": wrong})
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid code"}
    assert TotpDevice.objects.get(user=customer).confirmed_at is None
    assert SecurityEvent.objects.filter(kind="mfa_failed", user=customer).count() == 1


@pytest.mark.django_db
def test_confirm_without_an_enrolment_is_409(customer_client: Client) -> None:
    assert post(customer_client, CONFIRM, {"code": "123456"}).status_code == 409


@pytest.mark.django_db
def test_a_second_enrolment_while_enabled_is_409(customer: User, customer_client: Client) -> None:
    enrolled(customer)
    assert post(customer_client, TOTP, {"password": DEFAULT_PASSWORD}).status_code == 409


# --- Signing in with the factor ------------------------------------------------------------------


@pytest.mark.django_db
def test_right_password_gives_mfa_token_and_no_tokens(customer: User) -> None:
    enrolled(customer)
    response = login("alice")
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"detail", "mfa_required", "mfa_token"}
    assert body["detail"] == "Second factor required"
    assert body["mfa_required"] is True
    assert len(body["mfa_token"]) >= 40
    assert response["WWW-Authenticate"] == "Bearer"
    assert "access_token" not in body
    assert not SignInSession.objects.filter(user=customer).exists()


@pytest.mark.django_db
def test_wrong_password_with_a_factor_gets_no_mfa_token(customer: User) -> None:
    enrolled(customer)
    response = login("alice", "wrong-password")
    assert response.status_code == 401
    assert "mfa_token" not in response.json()


@pytest.mark.django_db
def test_code_completes_sign_in_with_otp_in_amr(customer: User) -> None:
    secret = enrolled(customer)
    response = second_step(mfa_token_for("alice"), code_at(secret))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "scope"}
    assert claims(body["access_token"])["amr"] == ["pwd", "otp"]
    assert claims(body["refresh_token"])["amr"] == ["pwd", "otp"]
    assert bearer(body["access_token"]).get(ME).json()["id"] == customer.pk
    # A refresh keeps the amr of the sign-in.
    refreshed = post(Client(), "/api/v1/auth/refresh", {"refresh_token": body["refresh_token"]})
    assert claims(refreshed.json()["access_token"])["amr"] == ["pwd", "otp"]


@pytest.mark.django_db
def test_password_only_tokens_say_pwd(customer: User) -> None:
    body = login("alice").json()
    assert claims(body["access_token"])["amr"] == ["pwd"]
    assert claims(body["refresh_token"])["amr"] == ["pwd"]


@pytest.mark.django_db
def test_requested_scope_is_carried_through_the_second_step(customer: User) -> None:
    secret = enrolled(customer)
    first = login("alice", scope="conversations:read")
    token = first.json()["mfa_token"]
    body = second_step(token, code_at(secret)).json()
    assert body["scope"] == "conversations:read"


@pytest.mark.django_db
@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_one_step_of_drift_is_accepted(customer: User, offset: int) -> None:
    secret = enrolled(customer)
    assert second_step(mfa_token_for("alice"), code_at(secret, offset)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_codes_beyond_one_step_are_refused(customer: User, offset: int) -> None:
    secret = enrolled(customer)
    assert second_step(mfa_token_for("alice"), code_at(secret, offset)).status_code == 401


@pytest.mark.django_db
def test_a_code_is_accepted_once(customer: User) -> None:
    secret = enrolled(customer)
    code = code_at(secret)
    first = second_step(mfa_token_for("alice"), code)
    assert first.status_code == 200
    replay = second_step(mfa_token_for("alice"), code)
    assert replay.status_code == 401
    assert "access_token" not in replay.json()
    # An earlier step's code after a later one was used is a replay too (RFC 6238 §5.2).
    earlier = second_step(mfa_token_for("alice"), code_at(secret, -1))
    assert earlier.status_code == 401


@pytest.mark.django_db
def test_an_mfa_token_works_once(customer: User) -> None:
    secret = enrolled(customer)
    token = mfa_token_for("alice")
    assert second_step(token, code_at(secret)).status_code == 200
    reused = second_step(token, code_at(secret, 1))
    assert reused.status_code == 401


@pytest.mark.django_db
def test_an_mfa_token_dies_after_five_wrong_codes(customer: User) -> None:
    secret = enrolled(customer)
    token = mfa_token_for("alice")
    wrong = str((int(code_at(secret)) + 500_000) % 1_000_000).zfill(6)
    for _ in range(5):
        assert second_step(token, wrong).status_code == 401
    exhausted = second_step(token, code_at(secret))
    assert exhausted.status_code == 401
    assert SecurityEvent.objects.filter(kind="mfa_failed", user=customer).count() == 5
    # The code itself was not used up: a new mfa_token takes it.
    fresh = second_step(mfa_token_for("alice"), code_at(secret))
    assert fresh.status_code == 200


@pytest.mark.django_db
def test_an_mfa_token_lives_five_minutes(customer: User) -> None:
    secret = enrolled(customer)
    token = mfa_token_for("alice")
    later = time.time() + mfa.MFA_TOKEN_TTL_SECONDS + 1
    with mock.patch("accounts.mfa.time.time", return_value=later):
        response = second_step(token, code_at(secret))
    assert response.status_code == 401


@pytest.mark.django_db
def test_an_mfa_token_names_its_user(customer: User, other_customer: User) -> None:
    enrolled(customer)
    bob_secret = enrolled(other_customer)
    # Bob's code with Alice's mfa_token signs in nobody.
    response = second_step(mfa_token_for("alice"), code_at(bob_secret))
    assert response.status_code == 401


@pytest.mark.django_db
def test_an_unknown_mfa_token_is_401(customer: User) -> None:
    secret = enrolled(customer)
    response = second_step("not-a-token", code_at(secret))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.django_db
def test_a_password_change_ends_a_waiting_mfa_token(customer: User) -> None:
    secret = enrolled(customer)
    token = mfa_token_for("alice")
    customer.set_password("another-long-password-2026")
    customer.save()
    assert second_step(token, code_at(secret)).status_code == 401


@pytest.mark.django_db
def test_recovery_codes_are_single_use(customer: User, customer_client: Client) -> None:
    _secret, codes = enrol(customer_client)
    first = second_step(mfa_token_for("alice"), codes[0])
    assert first.status_code == 200
    assert claims(first.json()["access_token"])["amr"] == ["pwd", "otp"]
    again = second_step(mfa_token_for("alice"), codes[0])
    assert again.status_code == 401
    # Spaces, case and dashes do not matter.
    loose = codes[1].replace("-", " ").upper()
    assert second_step(mfa_token_for("alice"), loose).status_code == 200
    me = bearer(first.json()["access_token"]).get(ME).json()
    assert me["mfa"] == {"totp": True, "recovery_codes_left": 8}


@pytest.mark.django_db
def test_wrong_codes_spend_the_sign_in_budget_and_hit_the_limit(
    customer: User, settings: Any
) -> None:
    settings.RATE_LIMIT_LOGIN = "4/m"
    secret = enrolled(customer)
    token = mfa_token_for("alice")  # the password spends 1 of 4
    wrong = str((int(code_at(secret)) + 500_000) % 1_000_000).zfill(6)
    for _ in range(3):
        assert second_step(token, wrong).status_code == 401
    # The budget is spent: even the right code now waits.
    limited = second_step(token, code_at(secret))
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    # And the username budget holds from another address as well.
    from_elsewhere = second_step(token, code_at(secret), REMOTE_ADDR="10.9.9.9")
    assert from_elsewhere.status_code == 429


@pytest.mark.django_db
def test_a_right_code_within_the_limits_costs_nothing(customer: User, settings: Any) -> None:
    settings.RATE_LIMIT_LOGIN = "2/m"
    secret = enrolled(customer, last_step_offset=-10)
    token = mfa_token_for("alice")  # 1 of 2
    response = second_step(token, code_at(secret))
    assert response.status_code == 200
    # The right code spent nothing: the second password attempt of the minute still goes.
    assert login("alice").status_code == 401  # (the factor's first step again)


@pytest.mark.django_db
def test_django_otp_style_lockout_does_not_exist(customer: User) -> None:
    """Only the sign-in limits throttle: after four wrong codes on one token, a right code on
    a new token is accepted at once (no per-device back-off)."""
    secret = enrolled(customer)
    token = mfa_token_for("alice")
    wrong = str((int(code_at(secret)) + 500_000) % 1_000_000).zfill(6)
    for _ in range(4):
        second_step(token, wrong)
    assert second_step(mfa_token_for("alice"), code_at(secret)).status_code == 200


# --- Turning it off ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_disable_needs_password_and_code(customer: User) -> None:
    secret = enrolled(customer)
    tokens = second_step(mfa_token_for("alice"), code_at(secret)).json()
    client = bearer(tokens["access_token"])
    wrong_code = client.delete(
        TOTP, {"password": DEFAULT_PASSWORD, "code": "000000"}, content_type="application/json"
    )
    assert wrong_code.status_code == 403
    wrong_password = client.delete(
        TOTP, {"password": "nope", "code": code_at(secret, 1)}, content_type="application/json"
    )
    assert wrong_password.status_code == 403
    assert TotpDevice.objects.filter(user=customer).exists()
    ok = client.delete(
        TOTP,
        {"password": DEFAULT_PASSWORD, "code": code_at(secret, 1)},
        content_type="application/json",
    )
    assert ok.status_code == 204
    assert not TotpDevice.objects.filter(user=customer).exists()
    assert not RecoveryCode.objects.filter(user=customer).exists()
    assert client.get(ME).json()["mfa"] == {"totp": False, "recovery_codes_left": 0}
    assert login("alice").status_code == 200
    assert SecurityEvent.objects.filter(kind="mfa_disabled", user=customer).count() == 1


@pytest.mark.django_db
def test_staff_cannot_disable_while_required(settings: Any, client_for: Any) -> None:
    settings.STAFF_MFA_REQUIRED = True
    operator = OperatorFactory(username="olga")
    secret = enrolled(operator)
    tokens = second_step(mfa_token_for("olga"), code_at(secret)).json()
    response = bearer(tokens["access_token"]).delete(
        TOTP,
        {"password": DEFAULT_PASSWORD, "code": code_at(secret, 1)},
        content_type="application/json",
    )
    assert response.status_code == 409
    assert TotpDevice.objects.filter(user=operator, confirmed_at__isnull=False).exists()


# --- Staff --------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("factory", ["operator", "superuser"])
def test_staff_without_a_factor_get_403_enrolment_required(
    request: Any, settings: Any, factory: str
) -> None:
    settings.STAFF_MFA_REQUIRED = True
    user = request.getfixturevalue(factory)
    response = login(user.username)
    assert response.status_code == 403
    body = response.json()
    assert body["mfa_enrolment_required"] is True
    assert set(body) == {"detail", "mfa_enrolment_required"}
    assert not SignInSession.objects.filter(user=user).exists()


@pytest.mark.django_db
def test_staff_without_a_factor_sign_in_when_not_required(settings: Any, operator: User) -> None:
    settings.STAFF_MFA_REQUIRED = False
    assert login("olivia").status_code == 200


@pytest.mark.django_db
def test_staff_routes_refuse_a_token_without_otp(
    settings: Any, operator: User, superuser: User
) -> None:
    settings.STAFF_MFA_REQUIRED = False
    operator_tokens = login("olivia").json()
    root_tokens = login("root").json()
    settings.STAFF_MFA_REQUIRED = True
    staff_route = bearer(operator_tokens["access_token"]).get("/api/v1/escalations")
    assert staff_route.status_code == 403
    superuser_route = bearer(root_tokens["access_token"]).get("/api/v1/security-events")
    assert superuser_route.status_code == 403
    assert SecurityEvent.objects.filter(kind="tier_denied", user=operator).exists()
    # Its scopes shrink to a customer's, so a customer route cannot read other people's data.
    me = bearer(operator_tokens["access_token"]).get(ME).json()
    assert me["scopes"] == ["conversations:read", "messages:write"]


@pytest.mark.django_db
def test_staff_routes_accept_a_token_with_otp(settings: Any, operator: User) -> None:
    settings.STAFF_MFA_REQUIRED = True
    secret = enrolled(operator)
    tokens = second_step(mfa_token_for("olivia"), code_at(secret)).json()
    assert bearer(tokens["access_token"]).get("/api/v1/escalations").status_code == 200


@pytest.mark.django_db
def test_api_keys_are_unchanged_by_the_staff_rule(
    settings: Any, superuser: User, client_for: Any
) -> None:
    from accounts.services import api_key_create

    settings.STAFF_MFA_REQUIRED = True
    _key, raw = api_key_create(
        actor=superuser, name="ops", owner_id=superuser.pk, scopes=["admin"], expires_at=None
    )
    response = Client(headers={"X-API-Key": raw}).get("/api/v1/security-events")
    assert response.status_code == 200


@pytest.mark.django_db
def test_the_totp_secret_is_encrypted_in_its_column(customer: User) -> None:
    from django.db import connection

    secret = enrolled(customer)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM accounts_totpdevice WHERE user_id = %s", [customer.pk])
        (stored,) = cursor.fetchone()
    assert secret not in stored
    assert stored.startswith("gAAAAA")  # a Fernet token
    assert TotpDevice.objects.get(user=customer).secret == secret


@pytest.mark.django_db
def test_the_staff_rule_adds_no_query_to_the_message_route(
    customer: User, settings: Any, django_assert_num_queries: Any
) -> None:
    """The amr check reads the token: with STAFF_MFA_REQUIRED on, the customer's message route
    runs exactly the statements it is pinned at (tests/messaging/test_process_round_trips.py)."""
    from tests.factories import ConversationFactory, MessageFactory
    from tests.messaging.test_process_round_trips import STATEMENTS

    settings.STAFF_MFA_REQUIRED = True
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation)
    client = bearer(login("alice").json()["access_token"])
    with django_assert_num_queries(STATEMENTS):
        response = post_message(client, customer, "How do I reset my password?", conversation.pk)
    assert response.status_code == 200


@pytest.mark.django_db
def test_the_staff_rule_adds_no_query_to_a_staff_route(
    operator: User, settings: Any, django_assert_num_queries: Any
) -> None:
    # The token's user with its deny-lists (one statement), the Operators-group check, then the
    # page of escalations.
    expected = 3
    settings.STAFF_MFA_REQUIRED = False
    client = bearer(login("olivia").json()["access_token"])
    with django_assert_num_queries(expected):
        assert client.get("/api/v1/escalations").status_code == 200
    settings.STAFF_MFA_REQUIRED = True
    secret = enrolled(operator)
    tokens = second_step(mfa_token_for("olivia"), code_at(secret)).json()
    with django_assert_num_queries(expected):
        assert bearer(tokens["access_token"]).get("/api/v1/escalations").status_code == 200
