"""Who may enter which part of the admin: the Operators group holds exactly what operators
need; users, API keys and security events stay superuser-only; customers never get in; the
admin login is rate limited and audited."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client

from accounts.models import ApiKey, SecurityEvent, User
from escalations.permissions import OPERATOR_PERMISSIONS, OPERATORS_GROUP, can_handle_escalations
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

migration = importlib.import_module("escalations.migrations.0002_operators_group")


def _group_permissions(group: Group) -> set[tuple[str, str]]:
    return set(group.permissions.values_list("content_type__app_label", "codename"))


def test_operators_group_holds_exactly_the_operator_permissions() -> None:
    from django.apps import apps

    Group.objects.filter(name=OPERATORS_GROUP).delete()  # a flushed test db may lack it anyway

    class Editor:
        connection = connection

    migration.create_operators_group(apps, Editor())

    group = Group.objects.get(name="Operators")
    assert _group_permissions(group) == {
        ("escalations", "view_escalation"),
        ("escalations", "change_escalation"),
        ("messaging", "view_conversation"),
        ("messaging", "view_message"),
    }


def test_migration_takes_away_permissions_granted_by_hand() -> None:
    from django.apps import apps
    from django.contrib.auth.models import Permission

    group, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    group.permissions.add(Permission.objects.get(codename="delete_user"))

    class Editor:
        connection = connection

    migration.create_operators_group(apps, Editor())

    assert ("accounts", "delete_user") not in _group_permissions(group)
    assert len(_group_permissions(group)) == 4


def test_migration_and_live_permission_lists_agree() -> None:
    assert migration.PERMISSIONS == OPERATOR_PERMISSIONS
    assert migration.GROUP_NAME == OPERATORS_GROUP


def test_can_handle_escalations(
    admin_operator: User, operator: User, customer: User, superuser: User
) -> None:
    assert can_handle_escalations(User.objects.get(pk=admin_operator.pk)) is True
    assert can_handle_escalations(superuser) is True
    assert can_handle_escalations(customer) is False
    admin_operator.is_staff = False  # group membership alone is not enough
    assert can_handle_escalations(admin_operator) is False


@pytest.mark.parametrize(
    "url",
    [
        "/admin/accounts/user/",
        "/admin/accounts/user/add/",
        "/admin/accounts/apikey/",
        "/admin/accounts/apikey/add/",
        "/admin/accounts/securityevent/",
    ],
)
def test_superuser_only_pages_refuse_operators(
    operator_admin_client: Client, superuser: User, url: str
) -> None:
    response = operator_admin_client.get(url)

    assert response.status_code == 403
    boss = Client()
    boss.force_login(superuser)
    assert boss.get(url).status_code == 200


def test_operator_cannot_create_an_api_key_or_edit_a_user(
    operator_admin_client: Client, admin_operator: User, customer: User
) -> None:
    response = operator_admin_client.post(
        "/admin/accounts/apikey/add/",
        {"name": "mine", "owner": admin_operator.pk, "scopes": '["admin"]'},
    )
    assert response.status_code == 403
    assert ApiKey.objects.count() == 0

    response = operator_admin_client.post(
        f"/admin/accounts/user/{admin_operator.pk}/change/", {"is_superuser": "on"}
    )
    assert response.status_code == 403
    admin_operator.refresh_from_db()
    assert admin_operator.is_superuser is False


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/escalations/escalation/",
        "/admin/messaging/conversation/",
        "/admin/statistics/",
    ],
)
def test_customer_account_cannot_open_the_admin(customer: User, url: str) -> None:
    client = Client()
    client.force_login(customer)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


def test_customer_cannot_sign_in_to_the_admin(customer: User) -> None:
    client = Client()
    response = client.post("/admin/login/", {"username": "alice", "password": DEFAULT_PASSWORD})

    assert response.status_code == 200  # the form again: customers are not staff
    assert "_auth_user_id" not in client.session
    assert SecurityEvent.objects.filter(kind="login_failed").count() == 1


def test_operator_signs_in_and_lands_on_the_queue(operator: User) -> None:
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "olivia", "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/escalations/escalation/"


def test_a_page_asked_for_is_kept_and_superusers_land_on_the_index(
    operator: User, superuser: User
) -> None:
    asked = Client().post(
        "/admin/login/?next=/admin/statistics/",
        {"username": "olivia", "password": DEFAULT_PASSWORD},
    )
    root = Client().post(
        "/admin/login/?next=/admin/", {"username": "root", "password": DEFAULT_PASSWORD}
    )

    assert asked["Location"] == "/admin/statistics/"
    assert root["Location"] == "/admin/"


def test_admin_login_is_rate_limited_and_audited(operator: User, settings: Any) -> None:
    settings.RATE_LIMIT_LOGIN = "3/m"
    client = Client(REMOTE_ADDR="203.0.113.9")

    statuses = [
        client.post("/admin/login/", {"username": "olivia", "password": f"wrong-{i}"}).status_code
        for i in range(4)
    ]
    # Past the limit even the right password is refused.
    blocked = client.post("/admin/login/", {"username": "olivia", "password": DEFAULT_PASSWORD})

    assert statuses == [200, 200, 200, 429]
    assert blocked.status_code == 429
    assert 1 <= int(blocked["Retry-After"]) <= 60
    assert "Too many sign-in attempts" in blocked.content.decode()
    assert "_auth_user_id" not in client.session
    failed = SecurityEvent.objects.filter(kind="login_failed")
    assert failed.count() == 3
    assert {e.detail["via"] for e in failed} == {"admin"}
    assert {e.ip for e in failed} == {"203.0.113.9"}
    limited = SecurityEvent.objects.filter(kind="rate_limited")
    assert limited.count() == 2
    assert {e.detail["group"] for e in limited} == {"login:ip"}


def test_admin_login_limit_per_username_spans_ip_addresses(operator: User, settings: Any) -> None:
    settings.RATE_LIMIT_LOGIN = "3/m"
    statuses = [
        Client(REMOTE_ADDR=f"198.51.100.{i}")
        .post("/admin/login/", {"username": "OLIVIA", "password": "wrong"})
        .status_code
        for i in range(4)
    ]

    assert statuses == [200, 200, 200, 429]
    assert SecurityEvent.objects.get(kind="rate_limited").detail["group"] == "login:username"
