"""Stored security events are bounded per kind, caller and minute and pruned after the
retention period; the client address behind proxies is counted from the right and must be an IP.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import SecurityEvent, User
from accounts.security import (
    STORED_EVENTS_PER_MINUTE,
    security_event_record,
    security_events_prune,
)
from core.request_context import client_ip

IDOR = SecurityEvent.Kind.IDOR_ATTEMPT


@pytest.mark.django_db
def test_a_customer_probing_ids_cannot_grow_the_table(
    customer_client: Client, other_customer: User, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="parley.security")
    attempts = STORED_EVENTS_PER_MINUTE * 3
    for n in range(attempts):
        response = customer_client.get(
            f"/api/v1/customers/{other_customer.pk}/conversations",
            REMOTE_ADDR=f"10.7.{n}.1",  # rotating addresses does not help
        )
        assert response.status_code == 403

    stored = SecurityEvent.objects.filter(kind=IDOR).order_by("id")
    assert stored.count() == STORED_EVENTS_PER_MINUTE + 1
    assert "throttled" in stored.last().detail  # type: ignore[union-attr]
    logged = [r for r in caplog.records if getattr(r, "event", None) == IDOR]
    assert len(logged) == attempts  # every attempt is still in the log


@pytest.mark.django_db
def test_budgets_are_per_kind_and_per_caller(customer: User, other_customer: User) -> None:
    for _ in range(STORED_EVENTS_PER_MINUTE + 5):
        security_event_record(kind=IDOR, user=customer, ip="10.7.0.1")
    security_event_record(kind=IDOR, user=other_customer, ip="10.7.0.1")
    security_event_record(kind=SecurityEvent.Kind.SCOPE_DENIED, user=customer, ip="10.7.0.1")

    assert SecurityEvent.objects.filter(kind=IDOR, user=customer).count() == (
        STORED_EVENTS_PER_MINUTE + 1
    )
    assert SecurityEvent.objects.filter(kind=IDOR, user=other_customer).count() == 1
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.SCOPE_DENIED).count() == 1


@pytest.mark.django_db
def test_anonymous_events_are_bounded_per_ip() -> None:
    for _ in range(STORED_EVENTS_PER_MINUTE + 5):
        security_event_record(kind=SecurityEvent.Kind.AUTH_FAILED, ip="10.7.1.1")
    security_event_record(kind=SecurityEvent.Kind.AUTH_FAILED, ip="10.7.1.2")

    assert SecurityEvent.objects.filter(ip="10.7.1.1").count() == STORED_EVENTS_PER_MINUTE + 1
    assert SecurityEvent.objects.filter(ip="10.7.1.2").count() == 1


@pytest.mark.django_db
def test_hostile_text_in_an_event_is_stored_escaped() -> None:
    security_event_record(
        kind=SecurityEvent.Kind.LOGIN_FAILED,
        path="/api/v1/\x00",
        ip="10.7.2.1",
        detail={"username": "alice\x00\ud800", "k\x00": ["\x01"]},
    )

    event = SecurityEvent.objects.get()
    assert event.path == "/api/v1/\\x00"
    assert event.detail == {"username": "alice\\x00\\ud800", "k\\x00": ["\\x01"]}


@pytest.mark.django_db
def test_prune_deletes_only_events_past_retention(settings: Any) -> None:
    settings.SECURITY_EVENT_RETENTION_DAYS = 30
    now = timezone.now()
    for age_days in (31, 29, 0):
        SecurityEvent.objects.create(
            kind=SecurityEvent.Kind.AUTH_FAILED,
            level="WARNING",
            created_at=now - timedelta(days=age_days),
        )

    assert security_events_prune(now=now) == 1
    ages = sorted((now - e.created_at).days for e in SecurityEvent.objects.all())
    assert ages == [0, 29]


# --- Client IP behind proxies --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "192.0.2.1"),  # no proxy trusted: the header is ignored
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the client wrote the leftmost entry
        (2, "6.6.6.6, 203.0.113.9, 198.51.100.7", "203.0.113.9"),
        (2, "203.0.113.9", "192.0.2.1"),  # fewer entries than proxies: not trustworthy
        (1, "not-an-ip", "192.0.2.1"),
        (1, "203.0.113.9:443", "192.0.2.1"),
        (1, "", "192.0.2.1"),
        (1, "2001:DB8::1", "2001:db8::1"),
        (1, "\x00", "192.0.2.1"),
    ],
)
def test_client_ip_counts_trusted_hops_from_the_right(
    settings: Any, trusted: int, forwarded: str, expected: str
) -> None:
    settings.RATELIMIT_TRUSTED_PROXIES = trusted
    settings.RATELIMIT_IP_META_KEY = None

    meta = {"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_FOR": forwarded}

    assert client_ip(meta) == expected


def test_client_ip_reads_the_configured_header(settings: Any) -> None:
    settings.RATELIMIT_TRUSTED_PROXIES = 1
    settings.RATELIMIT_IP_META_KEY = "HTTP_X_REAL_IP"

    meta = {"REMOTE_ADDR": "192.0.2.1", "HTTP_X_REAL_IP": "203.0.113.5"}

    assert client_ip(meta) == "203.0.113.5"


def test_remote_addr_that_is_not_an_ip_is_no_address(settings: Any) -> None:
    settings.RATELIMIT_TRUSTED_PROXIES = 0

    assert client_ip({"REMOTE_ADDR": "unix:/run/sock"}) is None


@pytest.mark.django_db
def test_spoofed_leftmost_entry_cannot_dodge_the_login_limit(settings: Any, customer: User) -> None:
    settings.RATELIMIT_TRUSTED_PROXIES = 1
    settings.RATE_LIMIT_LOGIN = "2/m"
    client = Client()
    for n in range(3):
        response = client.post(
            "/api/v1/auth/token",
            {"username": f"nobody{n}", "password": "x"},
            content_type="application/json",
            REMOTE_ADDR="10.0.0.5",  # the proxy
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.77",
        )
    assert response.status_code == 429
