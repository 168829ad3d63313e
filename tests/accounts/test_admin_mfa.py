"""The second factor in the admin (SPEC §4, §7): the code after the password (same canonical
username, same limits), the enrolment page before any other under STAFF_MFA_REQUIRED=1 (QR
code drawn by the server, no script), recovery codes shown once, a superuser's reset."""

from __future__ import annotations

import re
from typing import Any

import pyotp
import pytest
from django.test import Client

from accounts import mfa
from accounts.admin_mfa import PENDING_SESSION_KEY as PENDING_KEY
from accounts.admin_tickets import AMR_SESSION_KEY
from accounts.models import RecoveryCode, SecurityEvent, SignInSession, TotpDevice, User
from tests.accounts.test_mfa import code_at, enrolled
from tests.factories import DEFAULT_PASSWORD
from tests.logins import signed_in

LOGIN = "/admin/login/"
CODE = "/admin/login/code/"
MFA_PAGE = "/admin/mfa/"


def password_step(client: Client, username: str = "olivia", next_url: str = "/admin/") -> Any:
    return client.post(
        f"{LOGIN}?next={next_url}", {"username": username, "password": DEFAULT_PASSWORD}
    )


@pytest.mark.django_db
def test_password_then_code(operator: User) -> None:
    secret = enrolled(operator)
    client = Client()
    first = password_step(client, next_url="/admin/escalations/escalation/")
    assert first.status_code == 302
    assert first["Location"] == CODE
    # Not signed in yet.
    assert client.get("/admin/").status_code == 302
    page = client.get(CODE)
    assert page.status_code == 200
    assert 'name="code"' in page.content.decode()
    done = client.post(CODE, {"code": code_at(secret)})
    assert done.status_code == 302
    assert done["Location"] == "/admin/escalations/escalation/"
    assert client.get("/admin/").status_code == 200
    assert client.session[AMR_SESSION_KEY] == ["pwd", "otp"]


@pytest.mark.django_db
def test_a_wrong_code_keeps_you_out_and_is_recorded(operator: User) -> None:
    secret = enrolled(operator)
    client = Client()
    password_step(client)
    wrong = str((int(code_at(secret)) + 500_000) % 1_000_000).zfill(6)
    response = client.post(CODE, {"code": wrong})
    assert response.status_code == 200
    assert "not valid" in response.content.decode()
    assert client.get("/admin/").status_code == 302
    assert SecurityEvent.objects.filter(kind="mfa_failed", user=operator).count() == 1


@pytest.mark.django_db
def test_a_recovery_code_signs_in_once(operator: User) -> None:
    enrolled(operator)
    codes = mfa._new_recovery_codes(operator)
    client = Client()
    password_step(client)
    assert client.post(CODE, {"code": codes[0]}).status_code == 302
    again = Client()
    password_step(again)
    assert again.post(CODE, {"code": codes[0]}).status_code == 200
    assert again.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_the_code_page_without_a_password_step_goes_back_to_login(operator: User) -> None:
    response = Client().get(CODE)
    assert response.status_code == 302
    assert response["Location"] == LOGIN


@pytest.mark.django_db
def test_wrong_codes_spend_the_same_budget_as_the_api(operator: User, settings: Any) -> None:
    settings.RATE_LIMIT_LOGIN = "3/m"
    secret = enrolled(operator)
    wrong = str((int(code_at(secret)) + 500_000) % 1_000_000).zfill(6)
    client = Client()
    password_step(client, username="OLIVIA")  # 1 of 3, under the canonical name
    client.post(CODE, {"code": wrong})  # 2
    client.post(CODE, {"code": wrong})  # 3
    limited = client.post(CODE, {"code": code_at(secret)})
    assert limited.status_code == 429
    # The API's sign-in for the same account is limited too (from another address).
    api = Client().post(
        "/api/v1/auth/token",
        {"username": "olivia", "password": DEFAULT_PASSWORD},
        content_type="application/json",
        REMOTE_ADDR="10.3.3.3",
    )
    assert api.status_code == 429


@pytest.mark.django_db
def test_staff_without_a_factor_reach_the_enrolment_page_first(
    operator: User, settings: Any
) -> None:
    settings.STAFF_MFA_REQUIRED = True
    client = Client()
    assert password_step(client).status_code == 302
    for url in ("/admin/", "/admin/escalations/escalation/", "/admin/statistics/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == MFA_PAGE
    page = client.get(MFA_PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    # The QR code is drawn here: an inline SVG image, no script, no outside service.
    qr = re.search(r'<img id="mfa-qr" src="([^"]+)"', html)
    assert qr is not None
    assert qr.group(1).startswith("data:image/svg+xml")
    assert "<script>" not in html.replace(" ", "")
    assert "http://" not in qr.group(1).split(",", 1)[0]
    assert "img-src 'self' data:" in page["Content-Security-Policy"]
    secret = re.search(r'data-secret="([A-Z2-7]{32})"', html)
    assert secret is not None
    assert TotpDevice.objects.get(user=operator).secret == secret.group(1)
    # The same secret on a reload (not a new one each time).
    assert secret.group(1) in client.get(MFA_PAGE).content.decode()

    wrong_password = client.post(
        MFA_PAGE, {"password": "not-it", "code": pyotp.TOTP(secret.group(1)).now()}
    )
    assert 'id="mfa-error"' in wrong_password.content.decode()
    assert TotpDevice.objects.get(user=operator).confirmed_at is None
    confirmed = client.post(
        MFA_PAGE, {"password": DEFAULT_PASSWORD, "code": pyotp.TOTP(secret.group(1)).now()}
    )
    assert confirmed.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-7-]{34})</code></li>", confirmed.content.decode())
    assert len(codes) == 10
    assert confirmed["Cache-Control"].count("no-store") == 1
    assert client.get("/admin/").status_code == 200
    # Shown once: the page now says the factor is on, without the codes.
    status = client.get(MFA_PAGE).content.decode()
    assert "10 recovery codes left" in status
    assert codes[0] not in status
    assert RecoveryCode.objects.filter(user=operator).count() == 10
    assert SecurityEvent.objects.filter(kind="mfa_enabled", user=operator).count() == 1


@pytest.mark.django_db
def test_a_wrong_enrolment_code_is_refused(operator: User, settings: Any) -> None:
    settings.STAFF_MFA_REQUIRED = True
    client = Client()
    password_step(client)
    client.get(MFA_PAGE)
    response = client.post(MFA_PAGE, {"password": DEFAULT_PASSWORD, "code": "000000"})
    assert response.status_code == 200
    assert 'id="mfa-error"' in response.content.decode()
    assert client.get("/admin/").status_code == 302
    assert TotpDevice.objects.get(user=operator).confirmed_at is None


@pytest.mark.django_db
def test_logout_passes_the_enrolment_gate(operator: User, settings: Any) -> None:
    settings.STAFF_MFA_REQUIRED = True
    client = Client()
    password_step(client)
    response = client.post("/admin/logout/")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_session_not_proven_with_the_factor_is_signed_out(operator: User, settings: Any) -> None:
    settings.STAFF_MFA_REQUIRED = True
    client = signed_in(operator)  # e.g. signed in before the factor was enrolled
    enrolled(operator)
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[0] == (MFA_PAGE, 302)
    assert response.redirect_chain[1][0].startswith(LOGIN)
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_not_required_staff_use_the_admin_without_a_factor(operator: User, settings: Any) -> None:
    settings.STAFF_MFA_REQUIRED = False
    client = Client()
    password_step(client)
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_a_superuser_resets_another_users_factor(
    operator: User, superuser: User, settings: Any
) -> None:
    settings.STAFF_MFA_REQUIRED = False
    secret = enrolled(operator)
    token = Client().post(
        "/api/v1/auth/token",
        {"username": "olivia", "password": DEFAULT_PASSWORD},
        content_type="application/json",
    )
    tokens = (
        Client()
        .post(
            "/api/v1/auth/token/mfa",
            {"mfa_token": token.json()["mfa_token"], "code": code_at(secret)},
            content_type="application/json",
        )
        .json()
    )
    mfa._new_recovery_codes(operator)
    admin = signed_in(superuser)
    session = admin.session
    session[AMR_SESSION_KEY] = ["pwd"]
    session.save()
    response = admin.post(
        "/admin/accounts/user/",
        {"action": "reset_second_factor", "_selected_action": [operator.pk, superuser.pk]},
    )
    assert response.status_code == 302
    assert not TotpDevice.objects.filter(user=operator).exists()
    assert not RecoveryCode.objects.filter(user=operator).exists()
    event = SecurityEvent.objects.get(kind="mfa_reset")
    assert event.user == operator
    assert event.detail["actor_id"] == superuser.pk
    # The operator's sessions are over; they sign in and enrol again.
    me = Client(headers={"Authorization": f"Bearer {tokens['access_token']}"}).get(
        "/api/v1/auth/me"
    )
    assert me.status_code == 401
    assert SignInSession.objects.get(user=operator).revoked_at is not None


@pytest.mark.django_db
def test_operators_cannot_reset_factors(operator: User, customer: User, settings: Any) -> None:
    settings.STAFF_MFA_REQUIRED = False
    enrolled(customer)
    client = Client()
    password_step(client)
    response = client.post(
        "/admin/accounts/user/",
        {"action": "reset_second_factor", "_selected_action": [customer.pk]},
    )
    assert response.status_code == 403
    assert TotpDevice.objects.filter(user=customer).exists()


@pytest.mark.django_db
def test_the_admin_session_key_changes_at_sign_in(operator: User) -> None:
    secret = enrolled(operator)
    client = Client()
    client.get(LOGIN)
    password_step(client)
    before = client.session.session_key
    client.post(CODE, {"code": code_at(secret)})
    after = client.session.session_key
    assert before
    assert after
    assert before != after
    assert PENDING_KEY not in client.session
