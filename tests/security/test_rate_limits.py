"""django-ratelimit on login (per IP and per username), registration and messages."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import SecurityEvent, User
from messaging.models import Message
from tests.factories import DEFAULT_PASSWORD
from tests.logins import login


@pytest.mark.django_db
def test_login_brute_force_is_429_with_retry_after(settings: Any, customer: User) -> None:
    settings.RATE_LIMIT_LOGIN = "5/m"
    for _ in range(5):
        assert login("alice", "wrong").status_code == 401
    response = login("alice", DEFAULT_PASSWORD)  # even the right password now waits
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["RateLimit-Limit"] == "5"
    assert response["RateLimit-Remaining"] == "0"
    assert response.json() == {"detail": "Too many requests"}
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.RATE_LIMITED).count() == 1


@pytest.mark.django_db
def test_login_limit_per_username_holds_across_ips(settings: Any, customer: User) -> None:
    settings.RATE_LIMIT_LOGIN = "3/m"
    for n in range(3):
        assert login("alice", "wrong", ip=f"10.0.1.{n}").status_code == 401
    assert login("ALICE", "wrong", ip="10.0.1.99").status_code == 429


@pytest.mark.django_db
def test_login_limit_per_ip_holds_across_usernames(settings: Any, customer: User) -> None:
    settings.RATE_LIMIT_LOGIN = "3/m"
    for n in range(3):
        assert login(f"user{n}", "wrong", ip="10.0.2.1").status_code == 401
    assert login("alice", DEFAULT_PASSWORD, ip="10.0.2.1").status_code == 429
    assert login("alice", DEFAULT_PASSWORD, ip="10.0.2.2").status_code == 200


@pytest.mark.django_db
def test_successful_login_sends_ratelimit_headers(customer: User) -> None:
    response = login("alice", DEFAULT_PASSWORD)
    assert response.status_code == 200
    assert response["RateLimit-Limit"] == "10"
    assert response["RateLimit-Remaining"] == "9"
    assert 1 <= int(response["RateLimit-Reset"]) <= 60


@pytest.mark.django_db
def test_registration_is_limited_per_ip(settings: Any) -> None:
    settings.RATE_LIMIT_REGISTER = "2/m"
    client = Client()
    statuses = [
        client.post(
            "/api/v1/auth/register",
            {"username": f"new{n}", "password": "lantern-orchard-47", "email": f"n{n}@x.io"},
            content_type="application/json",
        ).status_code
        for n in range(3)
    ]
    assert statuses == [201, 201, 429]
    assert User.objects.filter(username__startswith="new").count() == 2


@pytest.mark.django_db
def test_messages_are_limited_per_user(
    settings: Any, customer: User, client_for: Any, other_customer: User
) -> None:
    settings.RATE_LIMIT_MESSAGES = "3/m"
    client = client_for(customer)
    body = {"message": "hello", "customer_id": customer.pk}
    responses = [
        client.post("/api/v1/messages/process", body, content_type="application/json")
        for _ in range(4)
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r["RateLimit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
    assert responses[0]["RateLimit-Limit"] == "3"
    assert int(responses[3]["Retry-After"]) >= 1
    assert Message.objects.filter(role="customer").count() == 3
    # Another user has their own budget.
    other = client_for(other_customer).post(
        "/api/v1/messages/process",
        {"message": "hi", "customer_id": other_customer.pk},
        content_type="application/json",
    )
    assert other.status_code == 200
