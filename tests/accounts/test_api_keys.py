"""API keys: created by superusers, shown once, stored hashed, scoped, revocable."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, SecurityEvent, User
from tests.logins import signed_in
from tests.messages import post_message

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/api-keys"


def _create(client: Client, **body: Any) -> Any:
    return client.post(KEYS, body, content_type="application/json")


def _created(
    client: Client, owner: User, scopes: list[str] | None = None, **body: Any
) -> dict[str, Any]:
    """A key for `owner` created over the API (named "k", reading conversations unless told):
    the 201 body, the raw key in it."""
    body = {"name": "k", "owner_id": owner.pk, "scopes": scopes or ["conversations:read"], **body}
    response = _create(client, **body)
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def _key_client(raw: str) -> Client:
    return Client(headers={"X-API-Key": raw})


def test_superuser_creates_key_shown_once_and_stored_hashed(
    superuser_client: Client, customer: User
) -> None:
    response = _create(
        superuser_client,
        name="mobile app",
        owner_id=customer.pk,
        scopes=["conversations:read", "messages:write"],
    )
    assert response.status_code == 201
    body = response.json()
    raw = body["key"]
    assert raw.startswith("prl_")
    assert body["owner_id"] == customer.pk
    assert body["scopes"] == ["conversations:read", "messages:write"]
    assert body["expires_at"] is None
    stored = ApiKey.objects.get(pk=body["id"])
    assert stored.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {str(getattr(stored, f.attname)) for f in ApiKey._meta.fields}

    listed = superuser_client.get(KEYS).json()
    assert listed["next_cursor"] is None
    assert [item["id"] for item in listed["items"]] == [stored.pk]
    assert "key" not in listed["items"][0]
    assert raw not in str(listed)


def test_key_acts_as_its_owner_and_counts_use(superuser_client: Client, customer: User) -> None:
    raw = _created(superuser_client, customer)["key"]
    response = _key_client(raw).get("/api/v1/auth/me")
    assert response.status_code == 200
    assert response.json()["id"] == customer.pk
    assert response.json()["scopes"] == ["conversations:read"]
    key = ApiKey.objects.get()
    assert key.use_count == 1
    assert key.last_used_at is not None


def test_key_scopes_limit_what_it_can_do(superuser_client: Client, customer: User) -> None:
    raw = _created(superuser_client, customer, name="read-only")["key"]
    response = post_message(_key_client(raw), customer, "hi")
    assert response.status_code == 403
    assert response["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="messages:write"'
    )
    assert customer.conversations.count() == 0


def test_key_scopes_never_exceed_the_owners_role(superuser_client: Client, customer: User) -> None:
    raw = _created(
        superuser_client, customer, ["escalations:manage", "conversations:read"], name="overreach"
    )["key"]
    assert _key_client(raw).get("/api/v1/auth/me").json()["scopes"] == ["conversations:read"]
    assert _key_client(raw).get("/api/v1/escalations").status_code == 403


def test_revoked_key_stops_working_at_once(superuser_client: Client, customer: User) -> None:
    created = _created(superuser_client, customer)
    assert _key_client(created["key"]).get("/api/v1/auth/me").status_code == 200
    assert superuser_client.delete(f"{KEYS}/{created['id']}").status_code == 204
    response = _key_client(created["key"]).get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert ApiKey.objects.get().revoked_at is not None
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.API_KEY_FAILED).count() == 1
    # Revoking again changes nothing.
    assert superuser_client.delete(f"{KEYS}/{created['id']}").status_code == 204


def test_expired_key_is_refused(superuser_client: Client, customer: User) -> None:
    created = _created(
        superuser_client, customer, expires_at=(timezone.now() + timedelta(hours=1)).isoformat()
    )
    ApiKey.objects.filter(pk=created["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _key_client(created["key"]).get("/api/v1/auth/me").status_code == 401


def test_key_of_inactive_owner_is_refused(superuser_client: Client, customer: User) -> None:
    raw = _created(superuser_client, customer)["key"]
    User.objects.filter(pk=customer.pk).update(is_active=False)
    assert _key_client(raw).get("/api/v1/auth/me").status_code == 401


def test_tampered_key_is_refused(superuser_client: Client, customer: User) -> None:
    raw = _created(superuser_client, customer)["key"]
    assert (
        _key_client(raw[:-1] + ("A" if raw[-1] != "A" else "B")).get("/api/v1/auth/me").status_code
        == 401
    )


@pytest.mark.parametrize("who", ["customer_client", "operator_client"])
def test_only_superusers_manage_keys(request: Any, who: str, customer: User) -> None:
    client = request.getfixturevalue(who)
    body = {"name": "k", "owner_id": customer.pk, "scopes": ["conversations:read"]}
    assert _create(client, **body).status_code == 403
    assert client.get(KEYS).status_code == 403
    assert ApiKey.objects.count() == 0


def test_superuser_without_admin_scope_gets_insufficient_scope(
    superuser: User, client_for: Any, customer: User
) -> None:
    client = client_for(superuser, {"conversations:read"})
    response = _create(client, name="k", owner_id=customer.pk, scopes=["conversations:read"])
    assert response.status_code == 403
    assert response["WWW-Authenticate"] == 'Bearer error="insufficient_scope", scope="admin"'


def test_delete_unknown_key_is_404(superuser_client: Client) -> None:
    assert superuser_client.delete(f"{KEYS}/424242").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "k", "owner_id": 999999, "scopes": ["conversations:read"]},
        {"name": "k", "owner_id": 1, "scopes": ["superpowers"]},
        {"name": "k", "owner_id": 1, "scopes": []},
        {"name": "", "owner_id": 1, "scopes": ["conversations:read"]},
        {"name": "k", "owner_id": 1, "scopes": ["conversations:read"], "key": "chosen"},
        {
            "name": "k",
            "owner_id": 1,
            "scopes": ["conversations:read"],
            "expires_at": "2001-01-01T00:00:00Z",
        },
    ],
)
def test_invalid_key_requests_are_422(superuser_client: Client, body: dict[str, Any]) -> None:
    assert _create(superuser_client, **body).status_code == 422
    assert ApiKey.objects.count() == 0


def test_key_list_paginates(superuser_client: Client, customer: User) -> None:
    for n in range(3):
        _created(superuser_client, customer, name=f"k{n}")
    first = superuser_client.get(f"{KEYS}?limit=2").json()
    assert [i["name"] for i in first["items"]] == ["k2", "k1"]
    second = superuser_client.get(f"{KEYS}?limit=2&cursor={first['next_cursor']}").json()
    assert [i["name"] for i in second["items"]] == ["k0"]
    assert second["next_cursor"] is None


def test_superuser_creates_a_key_in_the_admin_shown_once(superuser: User, customer: User) -> None:
    client = signed_in(superuser)
    response = client.post(
        "/admin/accounts/apikey/add/",
        {"name": "from admin", "owner": customer.pk, "scopes": ["conversations:read"]},
    )
    assert response.status_code == 200
    key = ApiKey.objects.get()
    raw = response.context["raw_key"]
    assert raw in response.content.decode()
    assert '<a class="button" href="/admin/accounts/apikey/">Back to API keys</a>' in (
        response.content.decode()
    )
    assert "no-store" in response["Cache-Control"]
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert key.created_by == superuser
    assert key.scopes == ["conversations:read"]
    # Not parked in the session or a cookie for a later page.
    assert raw not in str(dict(client.session))
    assert raw not in str(response.cookies)
    assert _key_client(raw).get("/api/v1/auth/me").json()["id"] == customer.pk
    assert raw not in client.get("/admin/accounts/apikey/").content.decode()


def test_admin_refuses_an_expiry_in_the_past(superuser: User, customer: User) -> None:
    client = signed_in(superuser)
    response = client.post(
        "/admin/accounts/apikey/add/",
        {
            "name": "k",
            "owner": customer.pk,
            "scopes": ["conversations:read"],
            "expires_at_0": "2001-01-01",
            "expires_at_1": "00:00:00",
        },
    )
    assert response.status_code == 200
    assert "The expiry must be in the future." in response.content.decode()
    assert ApiKey.objects.count() == 0
