"""Request ids, security headers, CORS, size limits, host checks, probes, error shapes."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from messaging.models import Message


@pytest.mark.django_db
def test_every_response_carries_a_request_id(customer_client: Client) -> None:
    responses = [
        Client().get("/health"),
        Client().get("/api/v1/conversations"),  # 401
        customer_client.get("/api/v1/conversations"),
        Client().get("/api/v1/nowhere"),  # 404
        Client().get("/"),
    ]
    ids = [r["X-Request-ID"] for r in responses]
    assert all(len(i) == 36 for i in ids)
    assert len(set(ids)) == len(ids)


def test_well_formed_incoming_request_id_is_kept() -> None:
    response = Client().get("/health", headers={"X-Request-ID": "trace-abc-123"})
    assert response["X-Request-ID"] == "trace-abc-123"


@pytest.mark.parametrize("bad", ["x", "has spaces in it", "a" * 200, "evil\tvalue"])
def test_malformed_incoming_request_id_is_replaced(bad: str) -> None:
    response = Client().get("/health", headers={"X-Request-ID": bad})
    assert response["X-Request-ID"] != bad
    assert len(response["X-Request-ID"]) == 36


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/health", "/api/v1/auth/me", "/", "/api/v1/docs"])
def test_security_headers(path: str) -> None:
    response = Client().get(path)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp


def test_no_hsts_over_plain_http() -> None:
    assert "Strict-Transport-Security" not in Client().get("/health")


def test_hsts_over_tls_in_production(settings: Any) -> None:
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    response = Client().get("/health", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.django_db
def test_cors_only_for_allowed_origins(settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    allowed = Client().options(
        "/api/v1/auth/token",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    denied = Client().options(
        "/api/v1/auth/token",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in denied


def test_no_cors_by_default() -> None:
    response = Client().get("/health", headers={"Origin": "https://app.example.com"})
    assert "Access-Control-Allow-Origin" not in response


def test_unknown_host_is_400() -> None:
    response = Client().get("/health", HTTP_HOST="evil.example.com")
    assert response.status_code == 400


@pytest.mark.django_db
def test_oversized_body_is_413_and_nothing_written(customer_client: Client, customer: User) -> None:
    body = json.dumps({"message": "x" * 70_000, "customer_id": customer.pk})
    response = customer_client.post(
        "/api/v1/messages/process", body, content_type="application/json"
    )
    assert response.status_code == 413
    assert "detail" in response.json()
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_oversized_body_without_content_length_is_413(customer: User) -> None:
    from tests.conftest import issue_access_token

    body = json.dumps({"message": "x" * 70_000, "customer_id": customer.pk}).encode()
    client = Client(headers={"Authorization": f"Bearer {issue_access_token(customer)}"})
    # A chunked upload has no Content-Length: the limit applies when the body is read.
    response = client.generic(
        "POST",
        "/api/v1/messages/process",
        body,
        content_type="application/json",
        CONTENT_LENGTH="",
    )
    assert response.status_code in (413, 422)
    assert Message.objects.count() == 0


def test_health_needs_no_database() -> None:
    # No django_db mark: pytest-django makes any database access raise in this test.
    response = Client().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert Client().get("/api/v1/health").json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_reports_each_dependency() -> None:
    response = Client().get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "cache": "ok", "channel_layer": "ok"},
    }


@pytest.mark.django_db
def test_ready_is_503_naming_what_failed(monkeypatch: Any) -> None:
    from core import outages

    def broken() -> None:
        raise ConnectionError("postgres://secret@db is down")

    monkeypatch.setitem(outages.CHECKS, "database", broken)
    response = Client().get("/ready")
    assert response.status_code == 503
    assert response.json() == {
        "detail": "Not ready: database unavailable",
        "checks": {"database": "unavailable", "cache": "ok", "channel_layer": "ok"},
    }
    assert "secret" not in response.content.decode()


@pytest.mark.django_db
def test_unexpected_error_is_500_without_internals(
    customer_client: Client, monkeypatch: Any, caplog: Any
) -> None:
    from messaging import selectors

    def explode(**kwargs: Any) -> Any:
        raise RuntimeError("SELECT secret FROM settings")

    monkeypatch.setattr(selectors, "conversation_page", explode)
    with caplog.at_level(logging.ERROR, logger="parley.api"):
        response = customer_client.get(
            "/api/v1/conversations", headers={"X-Request-ID": "req-500-00001"}
        )
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error", "request_id": "req-500-00001"}
    assert "secret" not in response.content.decode()
    assert "RuntimeError" in caplog.text  # the traceback is in the log, not the response


def test_unknown_api_path_is_json_404() -> None:
    response = Client().get("/api/v1/nowhere")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found"}


def test_log_lines_are_json_with_the_request_id() -> None:
    from core.logging import JsonFormatter, RequestContextFilter
    from core.request_context import request_id_var

    record = logging.LogRecord(
        "parley.security",
        logging.CRITICAL,
        __file__,
        1,
        "security event: %s",
        ("idor_attempt",),
        None,
    )
    record.event = "idor_attempt"
    record.user_id = 7
    token = request_id_var.set("req-json-0001")
    try:
        RequestContextFilter().filter(record)
    finally:
        request_id_var.reset(token)
    parsed = json.loads(JsonFormatter().format(record))
    assert parsed["level"] == "CRITICAL"
    assert parsed["message"] == "security event: idor_attempt"
    assert parsed["event"] == "idor_attempt"
    assert parsed["user_id"] == 7
    assert parsed["request_id"] == "req-json-0001"


@pytest.mark.django_db
def test_security_event_is_stored_with_request_context(customer: User) -> None:
    from accounts.models import SecurityEvent
    from accounts.security import security_event_record

    security_event_record(
        kind=SecurityEvent.Kind.IDOR_ATTEMPT,
        user=customer,
        path="/x",
        ip="10.9.9.9",
        detail={"customer_id": 5},
    )
    event = SecurityEvent.objects.get()
    assert (event.kind, event.level, event.user_id, event.ip, event.path, event.detail) == (
        "idor_attempt",
        "CRITICAL",
        customer.pk,
        "10.9.9.9",
        "/x",
        {"customer_id": 5},
    )


@pytest.mark.django_db
def test_recording_a_security_event_never_raises(monkeypatch: Any) -> None:
    from accounts.models import SecurityEvent
    from accounts.security import security_event_record

    def fail(**kwargs: Any) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(SecurityEvent.objects, "create", fail)
    security_event_record(kind=SecurityEvent.Kind.AUTH_FAILED, path="/x")  # no exception
    response = Client().get("/api/v1/auth/me", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
