"""A dependency that does not answer (PostgreSQL, Redis, an exhausted pool) is a 503 with
Retry-After and the request id, never a 500 and never the cause; nothing is half-written."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError
from django.test import Client
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from accounts.models import User
from messaging import selectors, services
from messaging.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "failure",
    [
        OperationalError("connection to server failed: secret-host:5432"),
        RedisConnectionError("Error 111 connecting to secret-host:6379"),
        RedisTimeoutError("Timeout reading from secret-host:6379"),
        ConnectionInterrupted(connection=None),
    ],
    ids=["postgresql", "redis-refused", "redis-timeout", "django-redis"],
)
def test_unreachable_dependency_is_503_with_retry_after(
    customer_client: Client, monkeypatch, caplog, failure: Exception
) -> None:
    def down(**_: object) -> None:
        raise failure

    monkeypatch.setattr(selectors, "conversation_page", down)
    with caplog.at_level(logging.ERROR):
        response = customer_client.get("/api/v1/conversations")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    body = response.json()
    assert body["detail"] == "Service temporarily unavailable"
    assert body["request_id"] == response["X-Request-ID"]
    assert "secret-host" not in response.content.decode()
    assert any("dependency unavailable" in r.getMessage() for r in caplog.records)


def test_failure_mid_message_writes_nothing(
    customer: User, customer_client: Client, monkeypatch
) -> None:
    def down(*_: object, **__: object) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    # The agent has answered and the turn is being written when PostgreSQL goes away.
    monkeypatch.setattr(services.fastpath, "turn_write", down)
    conversation = Conversation.objects.create(customer=customer)
    response = customer_client.post(
        "/api/v1/messages/process",
        {"message": "hello", "customer_id": customer.pk, "conversation_id": conversation.pk},
        content_type="application/json",
    )

    assert response.status_code == 503
    assert not Message.objects.filter(conversation=conversation).exists()
