"""A dependency that does not answer (PostgreSQL, Redis, an exhausted pool) is a 503 with
Retry-After and the request id, never a 500 and never the cause; nothing is half-written."""

from __future__ import annotations

import logging

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from accounts.models import User
from core import outages
from messaging import selectors, services
from messaging.models import Conversation, Message
from tests.logins import signed_in
from tests.messages import post_message

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("failure", "dependency"),
    [
        (OperationalError("connection to server failed: secret-host:5432"), "database"),
        (InterfaceError("connection already closed (secret-host)"), "database"),
        (RedisConnectionError("Error 111 connecting to secret-host:6379"), "channel_layer"),
        (RedisTimeoutError("Timeout reading from secret-host:6379"), "channel_layer"),
        (ConnectionInterrupted(connection=None), "cache"),
    ],
    ids=["postgresql", "connection-closed", "redis-refused", "redis-timeout", "django-redis"],
)
def test_unreachable_dependency_is_503_with_retry_after(
    customer_client: Client, monkeypatch, caplog, failure: Exception, dependency: str
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
    outage_lines = [r for r in caplog.records if r.name == "parley.outages"]
    assert [r.outage for r in outage_lines] == ["started"]
    assert outage_lines[0].dependency == dependency


def test_failure_mid_message_writes_nothing(
    customer: User, customer_client: Client, monkeypatch
) -> None:
    def down(*_: object, **__: object) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    # The agent has answered and the turn is being written when PostgreSQL goes away.
    monkeypatch.setattr(services.fastpath, "turn_write", down)
    conversation = Conversation.objects.create(customer=customer)
    response = post_message(customer_client, customer, "hello", conversation.pk)

    assert response.status_code == 503
    assert not Message.objects.filter(conversation=conversation).exists()


def test_an_outage_is_logged_once_not_once_a_request(
    customer_client: Client, monkeypatch, caplog
) -> None:
    def down(**_: object) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(selectors, "conversation_page", down)
    # The watcher would end the outage at once (the test database answers its check).
    monkeypatch.setitem(outages.CHECKS, "database", lambda: _raise(OperationalError("down")))
    with caplog.at_level(logging.DEBUG):
        statuses = [customer_client.get("/api/v1/conversations").status_code for _ in range(5)]

    assert statuses == [503] * 5
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [(r.name, r.getMessage()) for r in lines] == [
        (
            "parley.outages",
            "database unavailable (OperationalError): requests get 503, waiting for it to return",
        )
    ]
    assert outages.outages_current()["database"].failures == 5

    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert outages.outage_recovered("database") is True
        assert outages.outage_recovered("database") is False  # ended once
    ended = [r.getMessage() for r in caplog.records if r.name == "parley.outages"]
    assert len(ended) == 1
    assert ended[0].startswith("database available again after ")
    assert ended[0].endswith("; 5 failure(s) meanwhile")


def test_the_watcher_ends_the_outage_when_the_check_passes(caplog) -> None:
    answers = iter([OperationalError("still down"), OperationalError("still down"), None])

    def check() -> None:
        answer = next(answers)
        if answer is not None:
            raise answer

    outages.CHECKS["flaky"] = check
    try:
        with caplog.at_level(logging.INFO, logger="parley.outages"):
            assert outages.outage_report("flaky", OperationalError("down")) is True
            assert outages.outage_report("flaky", OperationalError("down")) is False
            assert outages.outage_wait("flaky", timeout=10) is True
    finally:
        del outages.CHECKS["flaky"]
    assert "flaky" not in outages.outages_current()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[1].startswith("flaky available again after ")
    assert messages[1].endswith("; 2 failure(s) meanwhile")


def _raise(exc: Exception) -> None:
    raise exc


@pytest.mark.parametrize("debug", [False, True])
def test_a_page_outside_the_api_is_503_too(
    operator: User, settings, monkeypatch, debug: bool
) -> None:
    """The admin (DEBUG or not): 503 with Retry-After, not Django's 500 page."""
    from config.admin_site import ParleyAdminSite

    settings.DEBUG = debug

    def down(*_: object, **__: object) -> None:
        raise OperationalError("connection to server at secret-host failed")

    monkeypatch.setattr(ParleyAdminSite, "each_context", down)
    client = signed_in(operator)
    response = client.get("/admin/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["detail"] == "Service temporarily unavailable"
    assert "secret-host" not in response.content.decode()


def test_an_outage_met_by_middleware_is_503(monkeypatch) -> None:
    """Outside any view (in a middleware): handler500 answers 503 instead of 500."""
    from config.middleware import ApiBodySizeLimitMiddleware

    def down(*_: object, **__: object) -> None:
        raise OperationalError("connection to server at secret-host failed")

    monkeypatch.setattr(ApiBodySizeLimitMiddleware, "_too_large", down)
    response = Client(raise_request_exception=False).get("/admin/login/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["detail"] == "Service temporarily unavailable"
    assert "secret-host" not in response.content.decode()


def test_a_watcher_ends_only_the_outage_it_was_started_for(monkeypatch) -> None:
    """A watcher still sleeping when its outage ended must not end the next one with its
    own (passing) check."""
    first = OperationalError("down")
    outages.outage_report("database", first)
    old = outages.outages_current()["database"]
    assert outages.outage_recovered("database") is True  # ended by /ready, say
    outages.outage_report("database", first)
    assert outages.outage_recovered("database", outage=old) is False
    assert "database" in outages.outages_current()
