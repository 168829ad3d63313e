"""Session, authentication and messages middleware serve browsers only: the admin keeps them
(and CSRF protection), the API (which never authenticates by cookie) skips them."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from tests.factories import DEFAULT_PASSWORD
from tests.logins import signed_in
from tests.messages import post_message

pytestmark = pytest.mark.django_db


def test_admin_login_still_refuses_a_post_without_the_csrf_token(superuser: User) -> None:
    client = Client(enforce_csrf_checks=True)
    refused = client.post(
        "/admin/login/", {"username": superuser.username, "password": DEFAULT_PASSWORD}
    )
    assert refused.status_code == 403
    assert "_auth_user_id" not in client.session

    page = client.get("/admin/login/")
    token = page.cookies["csrftoken"].value
    accepted = client.post(
        "/admin/login/",
        {
            "username": superuser.username,
            "password": DEFAULT_PASSWORD,
            "csrfmiddlewaretoken": token,
        },
    )
    assert accepted.status_code == 302
    assert client.session["_auth_user_id"] == str(superuser.pk)


def test_admin_session_and_messages_still_work(superuser: User) -> None:
    client = signed_in(superuser)
    page = client.get("/admin/")
    assert page.status_code == 200
    assert page.wsgi_request.user == superuser
    assert hasattr(page.wsgi_request, "_messages")


def test_api_request_has_no_session_user_or_cookie(superuser: User) -> None:
    client = signed_in(superuser)  # a browser holding the admin's session cookie

    response = client.get("/api/v1/auth/me")

    assert response.status_code == 401  # the cookie authenticates nothing on the API
    request = response.wsgi_request
    assert not hasattr(request, "session")
    assert not hasattr(request, "user")
    assert not hasattr(request, "_messages")
    assert "Set-Cookie" not in response.headers
    assert "sessionid" not in response.cookies
    assert "csrftoken" not in response.cookies


def test_api_post_with_a_bearer_token_needs_no_csrf_token(customer: User) -> None:
    client = Client(enforce_csrf_checks=True)
    token = client.post(
        "/api/v1/auth/token",
        {"username": customer.username, "password": DEFAULT_PASSWORD},
        content_type="application/json",
    ).json()["access_token"]

    sent = post_message(client, customer, "hello", 0, Authorization=f"Bearer {token}")

    assert sent.status_code == 200
