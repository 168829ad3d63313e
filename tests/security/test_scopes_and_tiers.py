"""Scopes narrow tokens; tiers follow the user's current flags, not what the token says."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import SecurityEvent, User
from escalations.services import operators_group_ensure
from messaging.models import Conversation
from tests.messages import post_message


@pytest.mark.django_db
def test_read_only_token_cannot_write(customer: User, client_for: Any) -> None:
    client = client_for(customer, {"conversations:read"})
    response = post_message(client, customer, "hello")
    assert response.status_code == 403
    assert response["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="messages:write"'
    )
    assert response.json() == {"detail": "This action needs the 'messages:write' scope"}
    assert Conversation.objects.count() == 0
    assert client.get("/api/v1/conversations").status_code == 200
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.SCOPE_DENIED)
    assert event.user_id == customer.pk
    assert event.detail == {"required": "messages:write"}


@pytest.mark.django_db
def test_write_only_token_cannot_read(customer: User, client_for: Any) -> None:
    client = client_for(customer, {"messages:write"})
    response = client.get("/api/v1/conversations")
    assert response.status_code == 403
    assert response["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="conversations:read"'
    )


@pytest.mark.django_db
def test_customer_on_staff_route_is_403_tier(customer_client: Client) -> None:
    response = customer_client.get("/api/v1/statistics")
    assert response.status_code == 403
    assert response.json() == {"detail": "This action is for staff accounts only"}
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.TIER_DENIED).count() == 1


@pytest.mark.django_db
def test_operator_on_superuser_route_is_403(operator_client: Client) -> None:
    response = operator_client.get("/api/v1/api-keys")
    assert response.status_code == 403
    assert response.json() == {"detail": "This action is for superuser accounts only"}


@pytest.mark.django_db
def test_demoted_operator_is_refused_at_the_next_request(operator: User, client_for: Any) -> None:
    client = client_for(operator)
    assert client.get("/api/v1/statistics").status_code == 200
    User.objects.filter(pk=operator.pk).update(is_staff=False)
    response = client.get("/api/v1/statistics")
    assert response.status_code == 403
    # Still a valid account: customer routes keep working.
    assert client.get("/api/v1/conversations").status_code == 200


@pytest.mark.django_db
def test_demoted_superuser_loses_admin_routes(superuser: User, client_for: Any) -> None:
    client = client_for(superuser)
    assert client.get("/api/v1/api-keys").status_code == 200
    User.objects.filter(pk=superuser.pk).update(is_superuser=False)
    assert client.get("/api/v1/api-keys").status_code == 403


@pytest.mark.django_db
def test_promoted_customer_needs_a_new_token_for_staff_scopes(
    customer: User, client_for: Any
) -> None:
    client = client_for(customer)
    User.objects.filter(pk=customer.pk).update(is_staff=True)
    customer.groups.add(operators_group_ensure())
    # An operator now: the tier passes, but the token was granted only customer scopes.
    response = client.get("/api/v1/statistics")
    assert response.status_code == 403
    assert response["WWW-Authenticate"] == 'Bearer error="insufficient_scope", scope="stats:read"'
