"""The staff REST routes: the queue listing, the tier/scope matrix, ids that do not exist,
request validation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import pytest
from django.test import Client
from django.utils import timezone
from ninja.responses import NinjaJSONEncoder

from accounts.models import SecurityEvent, User
from escalations.models import Escalation
from messaging.schemas import MAX_ID
from tests.escalations.conftest import staff_post
from tests.factories import (
    ConversationFactory,
    EscalationFactory,
    OperatorFactory,
    UserFactory,
)
from tests.snapshots import database_state

pytestmark = pytest.mark.django_db


# --- Tier and scope matrix -------------------------------------------------------------------


class StaffRoute(NamedTuple):
    """A staff route: how to call it, the scope it needs, its success status."""

    name: str
    method: str
    path: str  # with {cid}: the escalated conversation's id
    body: Any
    scope: str
    ok: int

    def call(self, client: Client, cid: int) -> Any:
        url = self.path.format(cid=cid)
        if self.method == "get":
            return client.get(url)
        return client.post(url, self.body, content_type="application/json")


STAFF_ROUTES = [
    StaffRoute("list", "get", "/api/v1/escalations", None, "escalations:manage", 200),
    StaffRoute(
        "list-open", "get", "/api/v1/escalations?status=open", None, "escalations:manage", 200
    ),
    StaffRoute(
        "assign", "post", "/api/v1/escalations/{cid}/assign", None, "escalations:manage", 200
    ),
    StaffRoute(
        "reply",
        "post",
        "/api/v1/escalations/{cid}/reply",
        {"message": "Hello"},
        "escalations:manage",
        201,
    ),
    StaffRoute(
        "resolve",
        "post",
        "/api/v1/escalations/{cid}/resolve",
        {"resolution_notes": "ok"},
        "escalations:manage",
        200,
    ),
    StaffRoute("statistics", "get", "/api/v1/statistics", None, "stats:read", 200),
]
# The actions; reading the queue and the statistics needs the staff tier and the scope only.
ESCALATION_ACTIONS = STAFF_ROUTES[2:5]


@pytest.fixture(params=STAFF_ROUTES, ids=lambda route: route.name)
def route(request: pytest.FixtureRequest) -> StaffRoute:
    """Each staff route in turn."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=ESCALATION_ACTIONS, ids=lambda route: route.name)
def action(request: pytest.FixtureRequest) -> StaffRoute:
    """Each action on an escalation in turn."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def target(escalated: Callable[..., Escalation]) -> int:
    """An escalated conversation's id: what the routes act on."""
    return escalated().conversation_id


def refused(route: StaffRoute, client: Client, conversation_id: int) -> Any:
    """The route's answer to a caller it must refuse, which changes nothing."""
    before = database_state()
    response = route.call(client, conversation_id)
    assert database_state() == before
    return response


def test_anonymous_gets_401(target: int, anonymous_client: Client, route: StaffRoute) -> None:
    response = refused(route, anonymous_client, target)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"detail": "Authentication credentials were not provided"}


def test_customer_gets_403(
    target: int, customer: User, customer_client: Client, route: StaffRoute
) -> None:
    response = refused(route, customer_client, target)

    assert response.status_code == 403
    assert response.json() == {"detail": "This action is for staff accounts only"}
    assert SecurityEvent.objects.filter(kind="tier_denied", user=customer).count() == 1


@pytest.mark.parametrize("caller", ["operator_client", "superuser_client"])
def test_operators_and_superusers_succeed(
    target: int, route: StaffRoute, caller: str, request: pytest.FixtureRequest
) -> None:
    response = route.call(request.getfixturevalue(caller), target)

    assert response.status_code == route.ok, response.content


def test_demoted_operator_gets_403(
    target: int, operator: User, client_for: Callable[..., Client], route: StaffRoute
) -> None:
    client = client_for(operator)  # token issued while staff
    operator.is_staff = False
    operator.save(update_fields=["is_staff"])

    response = refused(route, client, target)

    assert response.status_code == 403
    assert response.json() == {"detail": "This action is for staff accounts only"}


def test_staff_outside_the_operators_group_gets_403(
    target: int, client_for: Callable[..., Client], route: StaffRoute
) -> None:
    # Reads included: staff outside the group see no escalation and no statistics. The admin
    # refuses this account too (test_admin.py): one operator rule at every door.
    response = refused(route, client_for(UserFactory(is_staff=True)), target)

    assert response.status_code == 403
    assert response.json() == {
        "detail": "This action is for operators only (staff in the Operators group)"
    }


def test_operator_token_without_the_scope_gets_403(
    target: int, operator: User, client_for: Callable[..., Client], route: StaffRoute
) -> None:
    other_scopes = {"conversations:read", "messages:write", "escalations:manage", "stats:read"} - {
        route.scope
    }

    response = refused(route, client_for(operator, scopes=other_scopes), target)

    assert response.status_code == 403
    assert (
        response["WWW-Authenticate"] == f'Bearer error="insufficient_scope", scope="{route.scope}"'
    )
    assert response.json() == {"detail": f"This action needs the '{route.scope}' scope"}
    assert SecurityEvent.objects.filter(kind="scope_denied", user=operator).count() == 1


def test_invalid_token_gets_401_invalid_token(target: int, route: StaffRoute) -> None:
    response = refused(route, Client(headers={"Authorization": "Bearer not-a-token"}), target)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_admin_session_cookie_authenticates_nothing(operator: User, escalation: Escalation) -> None:
    client = Client()
    client.force_login(operator)

    response = staff_post(client, escalation.conversation_id, "assign")

    assert response.status_code == 401
    assert Escalation.objects.get(pk=escalation.pk).status == "open"


# --- Ids that do not exist -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("assign", {}),
        ("reply", {"message": "Hello"}),
        ("resolve", {"resolution_notes": "ok"}),
    ],
)
@pytest.mark.parametrize("missing_id", [999_999, MAX_ID, MAX_ID + 1])
def test_unknown_conversation_gets_404_and_nothing_changes(
    escalated: Callable[..., Escalation],
    operator_client: Client,
    action: str,
    body: Any,
    missing_id: int,
) -> None:
    escalated()  # rows a wrong target must leave as they are
    before = database_state()

    response = staff_post(operator_client, missing_id, action, body)

    assert response.status_code == 404
    assert response.json() == {"detail": "Conversation not found"}
    assert database_state() == before


# --- The listing ------------------------------------------------------------------------------


def _json_time(value: datetime | None) -> str | None:
    # How the API's JSON encoder writes timestamps (DjangoJSONEncoder: milliseconds, "Z").
    return None if value is None else NinjaJSONEncoder().default(value)


def _item(escalation: Escalation) -> dict[str, Any]:
    escalation.refresh_from_db()
    return {
        "id": escalation.pk,
        "conversation_id": escalation.conversation_id,
        "customer_id": escalation.conversation.customer_id,
        "status": escalation.status,
        "reason": escalation.reason,
        "created_at": _json_time(escalation.created_at),
        "assigned_to": escalation.assigned_to_id,
        "resolved_at": _json_time(escalation.resolved_at),
        "resolution_notes": escalation.resolution_notes,
        "first_response_due": _json_time(escalation.first_response_due),
        "resolution_due": _json_time(escalation.resolution_due),
        "first_responded_at": _json_time(escalation.first_response_at),
        "sla_breached": [],
    }


@pytest.fixture
def queue(operator: User) -> dict[str, Escalation]:
    """Four escalations created out of order, with the same created_at for two of them."""
    now = timezone.now().replace(microsecond=0)
    same = now - timedelta(minutes=30)
    return {
        "resolved": EscalationFactory(
            created_at=now - timedelta(hours=3),
            status="resolved",
            resolved_at=now,
            resolved_by=operator,
            assigned_to=operator,
            resolution_notes="done",
            conversation=ConversationFactory(status="resolved"),
        ),
        "newest": EscalationFactory(created_at=now - timedelta(minutes=1)),
        "tie_b": EscalationFactory(created_at=same),
        "assigned": EscalationFactory(
            created_at=now - timedelta(hours=1), status="assigned", assigned_to=operator
        ),
        "tie_a": EscalationFactory(created_at=same),
    }


def test_list_is_oldest_first_with_exact_items(
    queue: dict[str, Escalation], operator_client: Client
) -> None:
    response = operator_client.get("/api/v1/escalations")

    assert response.status_code == 200
    order = ["resolved", "assigned", "tie_b", "tie_a", "newest"]  # created_at, then id
    assert response.json() == {"items": [_item(queue[k]) for k in order], "next_cursor": None}


@pytest.mark.parametrize(
    ("status", "keys"),
    [
        ("open", ["tie_b", "tie_a", "newest"]),
        ("assigned", ["assigned"]),
        ("resolved", ["resolved"]),
    ],
)
def test_list_filters_by_status(
    queue: dict[str, Escalation], operator_client: Client, status: str, keys: list[str]
) -> None:
    response = operator_client.get(f"/api/v1/escalations?status={status}")

    assert [i["id"] for i in response.json()["items"]] == [queue[k].pk for k in keys]


def test_list_pages_with_a_cursor_without_gaps_or_repeats(
    queue: dict[str, Escalation], operator_client: Client
) -> None:
    seen: list[int] = []
    url = "/api/v1/escalations?status=open&limit=1"
    pages = 0
    while url:
        body = operator_client.get(url).json()
        seen += [i["id"] for i in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        url = f"/api/v1/escalations?status=open&limit=1&cursor={cursor}" if cursor else ""

    assert seen == [queue["tie_b"].pk, queue["tie_a"].pk, queue["newest"].pk]
    assert pages == 3


def test_list_costs_three_queries(
    queue: dict[str, Escalation], operator_client: Client, django_assert_num_queries: Any
) -> None:
    # The caller's user row (auth), their Operators-group membership (the operator rule), and
    # one page with its conversations joined.
    with django_assert_num_queries(3):
        response = operator_client.get("/api/v1/escalations?limit=100")
    assert len(response.json()["items"]) == 5


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "status=closed", "limit=x"])
def test_list_rejects_bad_parameters_with_422(operator_client: Client, query: str) -> None:
    response = operator_client.get(f"/api/v1/escalations?{query}")

    assert response.status_code == 422


def test_list_rejects_a_tampered_cursor_with_400(operator_client: Client) -> None:
    response = operator_client.get("/api/v1/escalations?cursor=bm90LWpzb24")

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid cursor"}


# --- Bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("reply", {"message": "hi", "role": "agent"}),
        ("reply", {"message": "   "}),
        ("reply", {"message": "x" * 4001}),
        ("reply", {"message": "bell \x07"}),
        ("reply", {}),
        ("resolve", {"resolution_notes": "ok", "status": "open"}),
        ("resolve", {}),
        ("resolve", {"resolution_notes": "x" * 4001}),
        ("resolve", {"resolution_notes": "nul \x00"}),
    ],
)
def test_invalid_bodies_get_422_and_change_nothing(
    operator_client: Client, action: str, body: Any, escalation: Escalation
) -> None:
    before = database_state()

    response = staff_post(operator_client, escalation.conversation_id, action, body)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
    assert database_state() == before


def test_api_key_of_an_operator_works(
    escalated: Callable[..., Escalation], superuser: User
) -> None:
    from accounts import services as account_services

    escalation = escalated()
    owner = OperatorFactory(username="bot")
    _, raw = account_services.api_key_create(
        actor=superuser,
        name="queue bot",
        owner_id=owner.pk,
        scopes=["escalations:manage"],
        expires_at=None,
    )

    response = Client(headers={"X-API-Key": raw}).get("/api/v1/escalations")

    assert response.status_code == 200
    assert [i["id"] for i in response.json()["items"]] == [escalation.pk]


# The statuses each staff route documents, as they are answered.
DOCUMENTED_STATUSES = {
    ("/api/v1/escalations", "get"): "200 400 401 403 422",
    ("/api/v1/escalations/{conversation_id}/assign", "post"): "200 400 401 403 404 413 422",
    ("/api/v1/escalations/{conversation_id}/reply", "post"): "201 400 401 403 404 409 413 422",
    ("/api/v1/escalations/{conversation_id}/resolve", "post"): "200 400 401 403 404 413 422",
    ("/api/v1/statistics", "get"): "200 401 403 422",  # 422: ?from=&to=
}


@pytest.mark.parametrize(
    ("route", "statuses"),
    DOCUMENTED_STATUSES.items(),
    ids=[f"{method} {path}" for path, method in DOCUMENTED_STATUSES],
)
def test_openapi_documents_every_status(
    client: Client, route: tuple[str, str], statuses: str
) -> None:
    path, method = route
    schema = client.get("/api/v1/openapi.json").json()
    assert set(schema["paths"][path][method]["responses"]) == set(statuses.split())
