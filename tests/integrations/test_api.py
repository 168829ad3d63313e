"""REST: /webhooks, /security-events and DELETE /customers/{id} — tiers, scopes, shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from accounts import services as account_services
from accounts.models import SecurityEvent, User
from integrations import services
from integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.factories import UserFactory
from tests.snapshots import rows_of

pytestmark = pytest.mark.django_db

ADMIN_ROUTES = [
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks"),
    ("delete", "/api/v1/webhooks/{webhook_id}"),
    ("get", "/api/v1/webhooks/{webhook_id}/deliveries"),
    ("get", "/api/v1/security-events"),
    ("delete", "/api/v1/customers/{customer_id}"),
]


@pytest.fixture
def endpoint(superuser: User, settings: Any) -> WebhookEndpoint:
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    created, _secret = services.webhook_endpoint_create(
        actor=superuser, url="http://127.0.0.1:9/hook", events=["message.created"]
    )
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    return created


def _call(client: Client, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = body if body is not None else {}
    return getattr(client, method)(path, data, content_type="application/json")


def _body_for(method: str, path: str) -> dict[str, Any] | None:
    if method == "post":
        return {"url": "https://hooks.example.test/x", "events": ["message.created"]}
    return None


@pytest.mark.parametrize(("method", "template"), ADMIN_ROUTES)
@pytest.mark.parametrize(
    "who", ["anonymous", "customer", "operator", "superuser_without_admin", "demoted_superuser"]
)
def test_only_current_superusers_with_admin_scope(
    method: str,
    template: str,
    who: str,
    endpoint: WebhookEndpoint,
    customer: User,
    operator: User,
    superuser: User,
    client_for: Callable[..., Client],
) -> None:
    path = template.format(webhook_id=endpoint.pk, customer_id=customer.pk)
    if method == "get" and method == "get" and "security" in path:
        path += "?limit=5"
    clients = {
        "anonymous": lambda: Client(),
        "customer": lambda: client_for(customer),
        "operator": lambda: client_for(operator),
        "superuser_without_admin": lambda: client_for(superuser, {"conversations:read"}),
        "demoted_superuser": lambda: client_for(superuser),
    }
    client = clients[who]()
    if who == "demoted_superuser":
        User.objects.filter(pk=superuser.pk).update(is_superuser=False)
    before = rows_of(WebhookEndpoint, User)
    response = _call(client, method, path, _body_for(method, path))
    assert response.status_code == (401 if who == "anonymous" else 403), response.content
    assert rows_of(WebhookEndpoint, User) == before


def test_superuser_api_key_works(superuser: User, endpoint: WebhookEndpoint) -> None:
    _key, raw = account_services.api_key_create(
        actor=superuser, name="ops", owner_id=superuser.pk, scopes=["admin"], expires_at=None
    )
    response = Client(headers={"X-API-Key": raw}).get("/api/v1/webhooks")
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [endpoint.pk]


def test_create_shows_the_secret_once(
    superuser_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))],
    )
    response = superuser_client.post(
        "/api/v1/webhooks",
        {
            "url": "https://hooks.example.test/parley",
            "events": ["message.created", "conversation.created"],
            "description": "CRM",
        },
        content_type="application/json",
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "url",
        "events",
        "description",
        "secret",
        "is_active",
        "created_at",
    }
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["conversation.created", "message.created"]
    assert (body["url"], body["description"], body["is_active"]) == (
        "https://hooks.example.test/parley",
        "CRM",
        True,
    )
    listed = superuser_client.get("/api/v1/webhooks").json()
    assert listed["next_cursor"] is None
    (item,) = listed["items"]
    assert "secret" not in item
    assert body["secret"] not in str(listed)


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://hooks.example.test/x", "events": []},
        {"url": "https://hooks.example.test/x", "events": ["message.deleted"]},
        {"url": "https://hooks.example.test/x"},
        {"url": "https://hooks.example.test/x", "events": ["message.created"], "secret": "x"},
        {"url": "x" * 2001, "events": ["message.created"]},
        {"url": "https://hooks.example.test/x", "events": ["message.created"], "is_active": 0},
    ],
)
def test_create_validation(superuser_client: Client, body: dict[str, Any]) -> None:
    response = superuser_client.post("/api/v1/webhooks", body, content_type="application/json")
    assert response.status_code == 422
    assert not WebhookEndpoint.objects.exists()


def test_delete(superuser_client: Client, endpoint: WebhookEndpoint) -> None:
    response = superuser_client.delete(f"/api/v1/webhooks/{endpoint.pk}")
    assert response.status_code == 204
    assert not WebhookEndpoint.objects.exists()
    again = superuser_client.delete(f"/api/v1/webhooks/{endpoint.pk}")
    assert again.status_code == 404
    assert superuser_client.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries").status_code == 404


@pytest.mark.parametrize("webhook_id", ["0", "999999", str(2**63), "abc"])
def test_unknown_ids(superuser_client: Client, endpoint: WebhookEndpoint, webhook_id: str) -> None:
    deleted = superuser_client.delete(f"/api/v1/webhooks/{webhook_id}")
    assert deleted.status_code in (404, 422)
    listed = superuser_client.get(f"/api/v1/webhooks/{webhook_id}/deliveries")
    assert listed.status_code in (404, 422)
    assert WebhookEndpoint.objects.count() == 1


def test_deliveries_page(superuser_client: Client, endpoint: WebhookEndpoint) -> None:
    other, _ = WebhookEndpoint.objects.get_or_create(
        url="http://other.example.test/", defaults={"events": ["message.created"]}
    )
    events = [WebhookEvent.objects.create(type="message.created", payload={}) for _ in range(3)]
    for number, event in enumerate(events, start=1):
        WebhookDelivery.objects.create(
            endpoint=endpoint, event=event, attempt=1, status="failed", error=f"HTTP 50{number}"
        )
        WebhookDelivery.objects.create(endpoint=other, event=event, attempt=1)
    first = superuser_client.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries?limit=2").json()
    assert [item["event_id"] for item in first["items"]] == [
        events[2].event_id,
        events[1].event_id,
    ]
    assert first["items"][0] == {
        "event_id": events[2].event_id,
        "event_type": "message.created",
        "attempt": 1,
        "status": "failed",
        "status_code": None,
        "error": "HTTP 503",
        "delivered": False,
        "created_at": first["items"][0]["created_at"],
    }
    second = superuser_client.get(
        f"/api/v1/webhooks/{endpoint.pk}/deliveries?limit=2&cursor={first['next_cursor']}"
    ).json()
    assert [item["event_id"] for item in second["items"]] == [events[0].event_id]
    assert second["next_cursor"] is None
    bad = superuser_client.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries?cursor=%%%")
    assert bad.status_code == 400


def test_security_events_filters_and_pages(
    superuser_client: Client, customer: User, other_customer: User
) -> None:
    SecurityEvent.objects.all().delete()
    for user in (customer, other_customer, customer):
        SecurityEvent.objects.create(kind="idor_attempt", level="CRITICAL", user=user, ip="1.2.3.4")
    SecurityEvent.objects.create(kind="login_failed", level="WARNING", user=None)
    everything = superuser_client.get("/api/v1/security-events").json()
    assert len(everything["items"]) == 4
    item = everything["items"][-1]
    assert set(item) == {
        "id",
        "kind",
        "level",
        "user_id",
        "ip",
        "path",
        "request_id",
        "detail",
        "created_at",
    }
    mine = superuser_client.get(
        f"/api/v1/security-events?kind=idor_attempt&user_id={customer.pk}&limit=1"
    ).json()
    assert [(i["kind"], i["user_id"]) for i in mine["items"]] == [("idor_attempt", customer.pk)]
    rest = superuser_client.get(
        f"/api/v1/security-events?kind=idor_attempt&user_id={customer.pk}"
        f"&limit=1&cursor={mine['next_cursor']}"
    ).json()
    assert [(i["kind"], i["user_id"]) for i in rest["items"]] == [("idor_attempt", customer.pk)]
    assert rest["next_cursor"] is None
    failed = superuser_client.get("/api/v1/security-events?kind=login_failed").json()
    assert [i["user_id"] for i in failed["items"]] == [None]


@pytest.mark.parametrize(
    "query", ["kind=nonsense", "user_id=0", f"user_id={2**63}", "limit=0", "limit=101"]
)
def test_security_events_validation(superuser_client: Client, query: str) -> None:
    assert superuser_client.get(f"/api/v1/security-events?{query}").status_code == 422


def test_customer_erasure_route_is_distinct_from_conversations(
    superuser_client: Client,
    customer: User,
    client_for: Callable[..., Client],
    operator: User,
) -> None:
    """DELETE /customers/{id} and GET /customers/{id}/conversations both reach their view."""
    listing = client_for(operator).get(f"/api/v1/customers/{customer.pk}/conversations")
    assert listing.status_code == 200
    assert superuser_client.get(f"/api/v1/customers/{customer.pk}").status_code == 405
    assert superuser_client.delete(f"/api/v1/customers/{customer.pk}").status_code == 204
    assert not User.objects.filter(pk=customer.pk).exists()


def test_customer_erasure_refuses_staff_and_unknown(
    superuser_client: Client, operator: User, superuser: User
) -> None:
    assert superuser_client.delete(f"/api/v1/customers/{operator.pk}").status_code == 409
    assert superuser_client.delete(f"/api/v1/customers/{superuser.pk}").status_code == 409
    assert superuser_client.delete("/api/v1/customers/999999").status_code == 404
    assert superuser_client.delete(f"/api/v1/customers/{2**63}").status_code in (404, 422)
    assert User.objects.filter(pk__in=[operator.pk, superuser.pk]).count() == 2


def test_customer_erasure_is_a_security_event(superuser_client: Client, superuser: User) -> None:
    victim = UserFactory(username="carol")
    victim_id = victim.pk
    assert superuser_client.delete(f"/api/v1/customers/{victim_id}").status_code == 204
    event = SecurityEvent.objects.get(kind="account_erased")
    assert event.user_id is None
    assert event.detail == {
        "erased_user_id": victim_id,
        "actor_id": superuser.pk,
        "self_service": False,
    }
    assert event.path == f"/api/v1/customers/{victim_id}"
