"""Operators set the display name customers see, from the escalation list."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from accounts.profile import display_name_set

pytestmark = pytest.mark.django_db

URL = "/admin/escalations/escalation/display-name/"


def test_operator_sets_their_display_name(
    operator_admin_client: Client, admin_operator: User
) -> None:
    response = operator_admin_client.post(URL, {"display_name": "  Olivia   from Support "})
    assert response.status_code == 302
    admin_operator.refresh_from_db()
    assert admin_operator.display_name == "Olivia from Support"
    assert admin_operator.public_name == "Olivia from Support"


@pytest.mark.parametrize("name", ["x" * 61, "Olivia\u202eevil", "bell\u0007"])
def test_bad_names_are_refused_and_change_nothing(
    operator_admin_client: Client, admin_operator: User, name: str
) -> None:
    response = operator_admin_client.post(URL, {"display_name": name}, follow=True)
    admin_operator.refresh_from_db()
    assert admin_operator.display_name == ""
    assert len(list(response.context["messages"])) == 1


def test_customer_session_cannot_set_a_display_name(customer: User) -> None:
    client = Client()
    client.force_login(customer)
    assert client.post(URL, {"display_name": "Support Team"}).status_code == 302  # to login
    customer.refresh_from_db()
    assert customer.display_name == ""
    with pytest.raises(PermissionError):
        display_name_set(user=customer, name="Support Team")
