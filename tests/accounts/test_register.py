"""POST /auth/register: strict input, Django's password validators, no silent defaults."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User

REGISTER = "/api/v1/auth/register"
STRONG = "lantern-orchard-47-quietly"


def _register(**body: Any) -> Any:
    return Client().post(REGISTER, body, content_type="application/json")


@pytest.mark.django_db
def test_register_creates_a_customer() -> None:
    response = _register(username="carol", password=STRONG, email="carol@example.com")
    assert response.status_code == 201
    user = User.objects.get(username="carol")
    assert response.json() == {"id": user.pk, "username": "carol", "email": "carol@example.com"}
    assert not user.is_staff
    assert not user.is_superuser
    assert user.is_active
    assert user.check_password(STRONG)
    login = Client().post(
        "/api/v1/auth/token",
        {"username": "carol", "password": STRONG},
        content_type="application/json",
    )
    assert login.json()["scope"] == "conversations:read messages:write"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "extra",
    [{"is_staff": True}, {"is_superuser": True}, {"scopes": ["admin"]}, {"id": 1}],
)
def test_unknown_fields_are_422_and_nothing_is_created(extra: dict[str, Any]) -> None:
    response = _register(username="mallory", password=STRONG, email="m@example.com", **extra)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
    assert not User.objects.filter(username="mallory").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("password", ["short", "password123", "12345678901234", "carol1234"])
def test_weak_password_is_refused(password: str) -> None:
    response = _register(username="carol", password=password, email="carol@example.com")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "payload", "password"]
    assert not User.objects.filter(username="carol").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["alice", "Alice", "ALICE"])
def test_duplicate_username_is_409(customer: User, username: str) -> None:
    response = _register(username=username, password=STRONG, email="x@example.com")
    assert response.status_code == 409
    assert response.json() == {"detail": "That username is already taken"}
    assert User.objects.filter(username__iexact="alice").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"username": "carol", "password": STRONG},
        {"username": "carol", "email": "c@example.com"},
        {"password": STRONG, "email": "c@example.com"},
        {"username": "carol", "password": STRONG, "email": "not-an-email"},
        {"username": "bad name!", "password": STRONG, "email": "c@example.com"},
        {"username": "", "password": STRONG, "email": "c@example.com"},
    ],
)
def test_invalid_registration_is_422(body: dict[str, Any]) -> None:
    assert Client().post(REGISTER, body, content_type="application/json").status_code == 422
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_broken_json_is_400_without_internals() -> None:
    response = Client().post(REGISTER, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "Cannot parse request body"}
