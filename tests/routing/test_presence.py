"""Presence: leases held by /ws/escalations/ sockets, the away choice, GET /operators and
POST /operators/me/presence, and the inbox pages' presence frames."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.admin_tickets import admin_ticket_issue
from accounts.models import User
from escalations import presence
from escalations.models import OperatorProfile
from escalations.operators import operators_list
from tests.escalations.conftest import named
from tests.factories import OperatorFactory, UserFactory
from tests.realtime.conftest import (
    access_token_for,
    collect_until,
    connect_authenticated,
    expect_close,
    make_communicator,
)
from tests.routing.conftest import online

pytestmark = pytest.mark.django_db


@pytest.fixture
def olivia_named(operator: User) -> None:
    # Names decide the order of offline operators; the factory's first names are random.
    named(operator, "Olivia")


def _item(user: User, status: str, open_assigned: int = 0, capacity: int = 5) -> dict[str, Any]:
    return {
        "id": user.pk,
        "display_name": user.public_name,
        "status": status,
        "open_assigned": open_assigned,
        "capacity": capacity,
    }


@pytest.mark.usefixtures("olivia_named")
def test_operators_are_listed_offline_until_connected(
    operator_client: Client, make_operator: Callable[..., User], customer: User
) -> None:
    olivia = User.objects.get(username="olivia")
    anna = make_operator("Anna", is_online=False)
    UserFactory(username="staffer", is_staff=True)  # staff outside the Operators group

    body = operator_client.get("/api/v1/operators").json()

    assert body == {"items": [_item(anna, "offline"), _item(olivia, "offline")]}


@pytest.mark.usefixtures("olivia_named")
def test_a_lease_makes_an_operator_online_and_the_list_puts_them_first(
    operator_client: Client, make_operator: Callable[..., User], settings: Any
) -> None:
    settings.OPERATOR_CAPACITY = 3
    anna = make_operator("Anna", is_online=False)
    zoe = make_operator("Zoe", capacity=7)  # online

    items = operator_client.get("/api/v1/operators").json()["items"]

    olivia = User.objects.get(username="olivia")
    assert items == [
        _item(zoe, "online", capacity=7),
        _item(anna, "offline", capacity=3),
        _item(olivia, "offline", capacity=3),
    ]


def test_an_expired_lease_is_offline_a_released_one_at_once(
    make_operator: Callable[..., User],
) -> None:
    anna = make_operator("Anna", is_online=False)
    # A process that died holding the lease stops renewing it: offline one lease later.
    presence.lease_renew(
        user_id=anna.pk, socket_id="dead", now=time.time() - presence.PRESENCE_LEASE_SECONDS - 1
    )
    assert presence.connected_user_ids() == set()

    # Renewing a lapsed lease counts as new (the socket's operator is back); renewing a live
    # one does not.
    assert presence.lease_renew(user_id=anna.pk, socket_id="dead") is True
    assert presence.lease_renew(user_id=anna.pk, socket_id="dead") is False
    presence.lease_release(user_id=anna.pk, socket_id="dead")
    presence.lease_renew(user_id=anna.pk, socket_id="a")
    presence.lease_renew(user_id=anna.pk, socket_id="b")
    presence.lease_release(user_id=anna.pk, socket_id="a")
    assert presence.connected_user_ids() == {anna.pk}  # one page still open
    presence.lease_release(user_id=anna.pk, socket_id="b")
    assert presence.connected_user_ids() == set()


def test_away_is_offline_while_connected(
    operator: User, operator_client: Client, operators_group: Any
) -> None:
    online(operator)

    away = operator_client.post(
        "/api/v1/operators/me/presence", {"status": "away"}, content_type="application/json"
    )
    listed = operator_client.get("/api/v1/operators").json()["items"]
    back = operator_client.post(
        "/api/v1/operators/me/presence", {"status": "online"}, content_type="application/json"
    )

    assert away.status_code == 200
    assert away.json() == _item(operator, "offline")
    assert listed == [_item(operator, "offline")]
    assert back.json() == _item(operator, "online")
    assert OperatorProfile.objects.get(user=operator).away is False


def test_online_without_an_inbox_page_stays_offline(operator_client: Client) -> None:
    response = operator_client.post(
        "/api/v1/operators/me/presence", {"status": "online"}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "offline"


@pytest.mark.parametrize(
    "body", [{"status": "offline"}, {"status": "busy"}, {}, {"status": "away", "extra": 1}]
)
def test_bad_presence_bodies_are_422(operator_client: Client, body: dict[str, Any]) -> None:
    response = operator_client.post(
        "/api/v1/operators/me/presence", body, content_type="application/json"
    )
    assert response.status_code == 422
    assert not OperatorProfile.objects.exists()


def test_customers_get_403_on_both_routes(customer_client: Client) -> None:
    assert customer_client.get("/api/v1/operators").status_code == 403
    response = customer_client.post(
        "/api/v1/operators/me/presence", {"status": "away"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert not OperatorProfile.objects.exists()


def test_staff_outside_the_group_cannot_set_presence(client_for: Callable[..., Client]) -> None:
    staffer = UserFactory(username="staffer", is_staff=True)
    response = client_for(staffer).post(
        "/api/v1/operators/me/presence", {"status": "away"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert not OperatorProfile.objects.exists()


def test_unauthenticated_is_401(anonymous_client: Client) -> None:
    assert anonymous_client.get("/api/v1/operators").status_code == 401


def test_the_listing_costs_a_fixed_number_of_queries(
    make_operator: Callable[..., User], django_assert_num_queries: Any
) -> None:
    for name in ("Anna", "Ben", "Cleo", "Dan"):
        make_operator(name)
    with django_assert_num_queries(3):  # operators, their profiles, their open assignments
        assert len(operators_list()) == 4


# --- The live channel holds the lease -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_open_escalations_socket_is_presence(operators_group: Any) -> None:
    operator = await sync_to_async(OperatorFactory)(username="olivia", display_name="Olivia")
    token = await sync_to_async(access_token_for)(operator)

    communicator, _ = await connect_authenticated("/ws/escalations/", token)
    try:
        statuses = await sync_to_async(operators_list)()
        assert [(s.id, s.status) for s in statuses] == [(operator.pk, "online")]
    finally:
        await communicator.disconnect()
    statuses = await sync_to_async(operators_list)()
    assert [(s.id, s.status) for s in statuses] == [(operator.pk, "offline")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_staff_outside_the_group_hold_no_lease(operators_group: Any) -> None:
    # Refused by the staff socket (4403, the operator rule) before any lease is taken.
    staffer = await sync_to_async(UserFactory)(username="staffer", is_staff=True)
    token = await sync_to_async(access_token_for)(staffer)
    communicator = make_communicator("/ws/escalations/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "auth", "token": token})
    assert await expect_close(communicator) == 4403
    await communicator.disconnect()
    assert await sync_to_async(presence.connected_user_ids)() == set()


def _ticket(user: User) -> str:
    """What the admin's live-ticket view issues to a signed-in inbox page."""
    client = Client()
    client.force_login(user)
    return admin_ticket_issue(user=user, session_key=client.session.session_key)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_inbox_pages_see_colleagues_come_and_go(operators_group: Any) -> None:
    olivia = await sync_to_async(OperatorFactory)(username="olivia", display_name="Olivia")
    oscar = await sync_to_async(OperatorFactory)(username="oscar", display_name="Oscar")
    olivia_ticket = await sync_to_async(_ticket)(olivia)

    page, _ = await connect_authenticated("/ws/escalations/", "", ticket=olivia_ticket)
    try:
        # Oscar opens the inbox over the API: Olivia's page hears it, without her own joining.
        token = await sync_to_async(access_token_for)(oscar)
        other, _ = await connect_authenticated("/ws/escalations/", token)
        frames = await collect_until(page, lambda f: len(f) >= 1)
        assert frames == [
            {
                "type": "operator.presence",
                "operator": {
                    "id": oscar.pk,
                    "display_name": "Oscar",
                    "status": "online",
                    "open_assigned": 0,
                    "capacity": 5,
                },
                "shown": "online",
            }
        ]
        await other.disconnect()
        frames = await collect_until(page, lambda f: len(f) >= 1)
        assert [(f["operator"]["id"], f["operator"]["status"]) for f in frames] == [
            (oscar.pk, "offline")
        ]
        assert await page.receive_nothing(timeout=0.3)
    finally:
        await page.disconnect()
