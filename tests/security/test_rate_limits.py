"""django-ratelimit on login (per IP and per username), registration and messages."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import SecurityEvent, User
from messaging.models import Conversation, Message
from tests.factories import DEFAULT_PASSWORD
from tests.logins import login
from tests.messages import post_message

pytestmark = pytest.mark.django_db


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


def test_login_limit_per_username_holds_across_ips(settings: Any, customer: User) -> None:
    settings.RATE_LIMIT_LOGIN = "3/m"
    for n in range(3):
        assert login("alice", "wrong", ip=f"10.0.1.{n}").status_code == 401
    assert login("ALICE", "wrong", ip="10.0.1.99").status_code == 429


def test_login_limit_per_ip_holds_across_usernames(settings: Any, customer: User) -> None:
    settings.RATE_LIMIT_LOGIN = "3/m"
    for n in range(3):
        assert login(f"user{n}", "wrong", ip="10.0.2.1").status_code == 401
    assert login("alice", DEFAULT_PASSWORD, ip="10.0.2.1").status_code == 429
    assert login("alice", DEFAULT_PASSWORD, ip="10.0.2.2").status_code == 200


def test_successful_login_sends_ratelimit_headers(customer: User) -> None:
    response = login("alice", DEFAULT_PASSWORD)
    assert response.status_code == 200
    assert response["RateLimit-Limit"] == "10"
    assert response["RateLimit-Remaining"] == "9"
    assert 1 <= int(response["RateLimit-Reset"]) <= 60


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


def test_messages_are_limited_per_user(
    settings: Any, customer: User, customer_client: Client, client_for: Any, other_customer: User
) -> None:
    settings.RATE_LIMIT_MESSAGES = "3/m"
    responses = [post_message(customer_client, customer, "hello") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r["RateLimit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
    assert responses[0]["RateLimit-Limit"] == "3"
    assert int(responses[3]["Retry-After"]) >= 1
    assert Message.objects.filter(role="customer").count() == 3
    # Another user has their own budget.
    assert post_message(client_for(other_customer), other_customer, "hi").status_code == 200


def test_new_conversations_are_limited_per_customer(
    settings: Any, customer: User, other_customer: User, client_for: Any, rate_limit_clock: Any
) -> None:
    """RATE_LIMIT_CONVERSATIONS counts only sends that start a conversation: past it, a new
    one is a 429 with the rate headers and writes nothing, while the customer goes on writing
    in the conversations they have, and a replay of a keyed request is still a replay."""
    settings.RATE_LIMIT_CONVERSATIONS = "2/h"
    client = client_for(customer)

    def send(conversation_id: int | None, key: str | None = None) -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        return post_message(client, customer, "hello", conversation_id, **headers)

    first = send(None, key="first")
    second = send(0)
    assert (first.status_code, second.status_code) == (200, 200)
    refused = send(None)
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too many requests"}
    assert refused["RateLimit-Limit"] == "2"
    assert refused["RateLimit-Remaining"] == "0"
    assert 1 <= int(refused["Retry-After"]) <= 3600
    assert refused["RateLimit-Reset"] == refused["Retry-After"]
    assert send(0).status_code == 429
    assert Conversation.objects.filter(customer=customer).count() == 2
    event = SecurityEvent.objects.filter(kind="rate_limited").latest("id")
    assert event.detail == {"group": "conversations:user", "rate": "2/h"}

    # Existing conversations take messages as before; a replay replays.
    for body in (first, second):
        assert send(body.json()["conversation_id"]).status_code == 200
    replay = send(None, key="first")
    assert (replay.status_code, replay["Idempotent-Replayed"]) == (200, "true")
    assert replay.json()["conversation_id"] == first.json()["conversation_id"]
    # Another customer has their own budget; the next window opens a new one.
    assert post_message(client_for(other_customer), other_customer, "hi").status_code == 200
    rate_limit_clock.advance(3600)
    assert send(None).status_code == 200
    assert Conversation.objects.filter(customer=customer).count() == 3


def test_a_refused_new_conversation_frees_its_idempotency_key(
    settings: Any, customer: User, customer_client: Client, rate_limit_clock: Any
) -> None:
    settings.RATE_LIMIT_CONVERSATIONS = "1/h"
    key = {"Idempotency-Key": "k-2"}
    assert post_message(customer_client, customer, "hello").status_code == 200
    refused = post_message(customer_client, customer, "hello", **key)
    assert refused.status_code == 429
    rate_limit_clock.advance(3600)
    retried = post_message(customer_client, customer, "hello", **key)
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried
