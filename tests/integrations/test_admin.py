"""Admin screens: webhook endpoints (secret shown once) and deliveries with "redeliver"."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.logins import signed_in

pytestmark = pytest.mark.django_db

ENDPOINTS = "/admin/integrations/webhookendpoint/"
DELIVERIES = "/admin/integrations/webhookdelivery/"


@pytest.fixture
def admin_client_(superuser: User) -> Client:
    return signed_in(superuser)


@pytest.fixture
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))],
    )


def test_create_shows_the_secret_once(admin_client_: Client, public_dns: Any) -> None:
    response = admin_client_.post(
        f"{ENDPOINTS}add/",
        {
            "url": "https://hooks.example.test/in",
            "events": ["message.created", "escalation.opened"],
            "description": "CRM",
        },
    )
    assert response.status_code == 200, response.content
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["message.created", "escalation.opened"]
    html = response.content.decode()
    assert endpoint.secret in html
    assert f'<a class="button" href="{ENDPOINTS}">Back to webhook endpoints</a>' in html
    assert "no-store" in response["Cache-Control"]
    # Not stashed anywhere for a later page.
    change = admin_client_.get(f"{ENDPOINTS}{endpoint.pk}/change/").content.decode()
    listing = admin_client_.get(ENDPOINTS).content.decode()
    assert endpoint.secret not in change
    assert endpoint.secret not in listing


def test_private_urls_are_refused_in_the_form(admin_client_: Client) -> None:
    response = admin_client_.post(
        f"{ENDPOINTS}add/", {"url": "http://169.254.169.254/latest/", "events": ["message.created"]}
    )
    assert response.status_code == 200
    assert "non-public" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_operators_see_neither_screen(operator: User) -> None:
    client = signed_in(operator)
    assert client.get(ENDPOINTS).status_code == 403
    assert client.get(DELIVERIES).status_code == 403


def test_redeliver_action_queues_a_new_attempt(admin_client_: Client) -> None:
    endpoint = WebhookEndpoint.objects.create(
        url="https://hooks.example.test/in", events=["message.created"], secret="whsec_eA=="
    )
    event = WebhookEvent.objects.create(type="message.created", payload={})
    failed = WebhookDelivery.objects.create(
        endpoint=endpoint, event=event, attempt=1, status="failed", error="HTTP 500"
    )
    listing = admin_client_.get(DELIVERIES)
    assert listing.status_code == 200
    assert "HTTP 500" in listing.content.decode()
    response = admin_client_.post(
        DELIVERIES, {"action": "redeliver", "_selected_action": [failed.pk]}, follow=True
    )
    assert response.status_code == 200
    assert list(
        WebhookDelivery.objects.filter(event=event)
        .order_by("attempt")
        .values_list("attempt", "status")
    ) == [(1, "failed"), (2, "pending")]
