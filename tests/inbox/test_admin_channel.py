"""The admin's live channel: tickets bought with the admin session (same-origin POST with the
CSRF token), redeemed once as the socket's first frame; every refusal SPEC §7 implies."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts import admin_tickets
from accounts import sockets as consumers
from accounts.models import User
from escalations.models import Escalation
from tests.factories import ConversationFactory
from tests.realtime.conftest import answer, expect_close, make_communicator
from tests.snapshots import database_state

TICKET_URL = "/admin/escalations/escalation/live-ticket/"


def _signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _buy_ticket(client: Client) -> str:
    response = client.post(TICKET_URL)
    assert response.status_code == 200, response.status_code
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert body["expires_in"] == admin_tickets.TICKET_TTL_SECONDS
    return str(body["ticket"])


# --- Buying a ticket -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_operator_session_buys_a_ticket_with_the_csrf_token(admin_operator: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_operator)
    page = client.get("/admin/escalations/escalation/")
    token = page.context["csrf_token"]

    without = client.post(TICKET_URL)
    with_token = client.post(TICKET_URL, headers={"X-CSRFToken": str(token)})

    assert without.status_code == 403  # CSRF failure: a cross-site page cannot buy one
    assert with_token.status_code == 200
    assert len(with_token.json()["ticket"]) >= 40


@pytest.mark.django_db
def test_ticket_url_refuses_get_anonymous_and_customer_sessions(customer: User) -> None:
    assert Client().post(TICKET_URL).status_code == 302  # to the admin login
    assert _signed_in(customer).post(TICKET_URL).status_code == 302  # not staff: login again
    staff = _signed_in(User.objects.create_user("op2", is_staff=True))
    assert staff.get(TICKET_URL).status_code == 405


@pytest.mark.django_db
def test_issue_refuses_non_staff_directly(customer: User) -> None:
    with pytest.raises(PermissionError):
        admin_tickets.admin_ticket_issue(user=customer, session_key="abc")


@pytest.mark.django_db
def test_ticket_is_never_a_credential_on_the_api(admin_operator: User) -> None:
    ticket = _buy_ticket(_signed_in(admin_operator))
    session_client = _signed_in(admin_operator)

    as_bearer = Client(headers={"Authorization": f"Bearer {ticket}"}).get("/api/v1/escalations")
    as_key = Client(headers={"X-API-Key": ticket}).get("/api/v1/escalations")
    with_session = session_client.get("/api/v1/escalations")

    assert (as_bearer.status_code, as_key.status_code, with_session.status_code) == (401, 401, 401)


@pytest.mark.django_db
def test_consume_is_single_use_and_bound_to_the_session(admin_operator: User) -> None:
    client = _signed_in(admin_operator)
    ticket = _buy_ticket(client)

    first = admin_tickets.admin_ticket_consume(ticket)
    second = admin_tickets.admin_ticket_consume(ticket)

    assert first is not None
    assert first.user.pk == admin_operator.pk
    assert "escalations:manage" in first.scopes
    assert second is None
    # Logging out ends what the session vouched for.
    client.logout()
    assert (
        admin_tickets.admin_session_check(user_id=admin_operator.pk, session_key=first.session_key)
        is None
    )


@pytest.mark.django_db
def test_ticket_of_a_demoted_operator_is_refused(admin_operator: User) -> None:
    ticket = _buy_ticket(_signed_in(admin_operator))
    admin_operator.is_staff = False
    admin_operator.save(update_fields=["is_staff"])
    assert admin_tickets.admin_ticket_consume(ticket) is None


# --- The sockets ---------------------------------------------------------------------------------


async def _ticket_for(user: User) -> tuple[Client, str]:
    client = await sync_to_async(_signed_in)(user)
    return client, await sync_to_async(_buy_ticket)(client)


async def _auth(path: str, frame: dict[str, Any], headers: Any = None) -> tuple[Any, Any]:
    communicator = make_communicator(path, headers)
    connected, _ = await communicator.connect()
    if not connected:
        return communicator, None
    await communicator.send_json_to(frame)
    output = await communicator.receive_output(5)
    return communicator, output


async def _redeem(ticket: str) -> tuple[Any, Any]:
    """The ticket as the first frame of the escalations socket: the communicator, its answer."""
    return await _auth("/ws/escalations/", {"type": "auth", "ticket": ticket})


async def _opened(ticket: str) -> Any:
    """The escalations socket, opened with the ticket (auth.ok)."""
    communicator, output = await _redeem(ticket)
    assert '"auth.ok"' in output["text"], output
    return communicator


async def _assert_refused(ticket: str) -> None:
    """Redeeming the ticket closes the escalations socket with 4401."""
    communicator, output = await _redeem(ticket)
    try:
        assert (output["type"], output["code"]) == ("websocket.close", 4401)
    finally:
        await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_ticket_opens_the_escalations_socket_and_events_arrive(
    admin_operator: User, escalated: Callable[..., Escalation]
) -> None:
    _, ticket = await _ticket_for(admin_operator)
    communicator = await _opened(ticket)
    try:
        escalation = await sync_to_async(escalated)()
        frame = await communicator.receive_json_from(timeout=5)
        assert (frame["type"], frame["event"], frame["escalation"]["id"]) == (
            "escalation.event",
            "opened",
            escalation.pk,
        )
    finally:
        await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_ticket_opens_a_conversation_socket_read_only(
    admin_operator: User, escalation: Escalation
) -> None:
    _, ticket = await _ticket_for(admin_operator)
    path = f"/ws/conversations/{escalation.conversation_id}/"
    communicator, output = await _auth(path, {"type": "auth", "ticket": ticket, "after_seq": 0})
    try:
        assert '"auth.ok"' in output["text"]
        replay = [await communicator.receive_json_from(timeout=5) for _ in range(3)]
        assert [f["message"]["seq"] for f in replay] == [1, 2, 3]
        # The operator answers through the services, never by writing on this socket.
        error = await answer(communicator, {"type": "message", "content": "hi"})
        assert (error["type"], error["status"], error["code"]) == ("error", 404, "not_found")
    finally:
        await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "frame",
    [
        {"type": "auth"},
        {"type": "auth", "ticket": ""},
        {"type": "auth", "ticket": 12345},
        {"type": "auth", "ticket": "not-a-ticket"},
        {"type": "auth", "ticket": "x" * 5000},
    ],
    ids=["no-ticket", "empty", "number", "unknown", "huge"],
)
async def test_socket_refuses_without_a_valid_ticket(frame: dict[str, Any]) -> None:
    communicator, output = await _auth("/ws/escalations/", frame)
    try:
        assert output["type"] == "websocket.close"
        assert output["code"] in (consumers.CLOSE_UNAUTHENTICATED, consumers.CLOSE_TOO_BIG)
    finally:
        await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_socket_refuses_a_reused_ticket(admin_operator: User) -> None:
    _, ticket = await _ticket_for(admin_operator)
    first = await _opened(ticket)
    try:
        await _assert_refused(ticket)
    finally:
        await first.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_socket_refuses_an_expired_ticket(
    admin_operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ticket = await _ticket_for(admin_operator)
    later = time.time() + admin_tickets.TICKET_TTL_SECONDS + 1
    monkeypatch.setattr(admin_tickets.time, "time", lambda: later)
    await _assert_refused(ticket)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_customer_session_cannot_open_the_channel(customer: User) -> None:
    """A customer signed in to the admin gets no ticket; a ticket forged into the cache for
    them (as if issued while they were staff) is refused when redeemed."""
    client = await sync_to_async(_signed_in)(customer)
    response = await sync_to_async(client.post)(TICKET_URL)
    assert response.status_code == 302

    customer.is_superuser = True  # in memory only: an operator when the ticket is issued
    ticket = await sync_to_async(admin_tickets.admin_ticket_issue)(
        user=customer, session_key=client.session.session_key
    )
    await _assert_refused(ticket)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_foreign_origin_is_refused_before_any_frame(admin_operator: User) -> None:
    _, ticket = await _ticket_for(admin_operator)
    headers = [(b"origin", b"https://evil.example"), (b"host", b"localhost")]
    communicator, output = await _auth(
        "/ws/escalations/", {"type": "auth", "ticket": ticket}, headers=headers
    )
    try:
        assert output is None  # the handshake itself was refused
    finally:
        await communicator.disconnect()
    # The ticket was not spent by the refused handshake.
    assert await sync_to_async(admin_tickets.admin_ticket_consume)(ticket) is not None


async def _log_out(client: Client, operator: User) -> None:
    await sync_to_async(client.logout)()


async def _demote(client: Client, operator: User) -> None:
    operator.is_staff = False
    await sync_to_async(operator.save)(update_fields=["is_staff"])


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("revoke", [_log_out, _demote], ids=["logout", "demotion"])
async def test_losing_the_admin_session_closes_the_live_channel(
    admin_operator: User,
    monkeypatch: pytest.MonkeyPatch,
    revoke: Callable[[Client, User], Awaitable[None]],
) -> None:
    monkeypatch.setattr(consumers, "REVALIDATE_SECONDS", 0.2)
    client, ticket = await _ticket_for(admin_operator)
    communicator = await _opened(ticket)
    try:
        await revoke(client, admin_operator)
        assert await expect_close(communicator, within=5) == 4401
    finally:
        await communicator.disconnect()


@pytest.mark.django_db
def test_escalation_page_carries_no_inline_script_and_the_live_hooks(
    operator_admin_client: Client, escalation: Escalation
) -> None:
    content = operator_admin_client.get(
        f"/admin/escalations/escalation/{escalation.pk}/change/"
    ).content.decode()
    assert 'data-live="escalation"' in content
    assert f'data-ticket-url="{TICKET_URL}"' in content
    assert "<script>" not in content
    assert 'name="_save"' not in content
    assert "closelink" not in content
    assert "/static/admin/parley/favicon" in content


@pytest.mark.django_db
def test_saved_replies_are_one_click_away_and_managed_by_operators(
    escalated: Callable[..., Escalation], operator_admin_client: Client
) -> None:
    response = operator_admin_client.post(
        "/admin/escalations/savedreply/add/",
        {"title": "Refund", "body": "I've refunded the <double> charge."},
    )
    assert response.status_code == 302
    escalation = escalated()
    content = operator_admin_client.get(
        f"/admin/escalations/escalation/{escalation.pk}/change/"
    ).content.decode()
    assert 'data-body="I&#x27;ve refunded the &lt;double&gt; charge."' in content


@pytest.mark.django_db
def test_admin_note_and_assign_to_colleague_go_through_the_services(
    escalated: Callable[..., Escalation],
    operator_admin_client: Client,
    second_operator: User,
) -> None:
    from escalations.models import InternalNote

    escalation = escalated()
    base = f"/admin/escalations/escalation/{escalation.pk}"

    operator_admin_client.post(f"{base}/notes/", {"note": "Check the invoice first"})
    operator_admin_client.post(f"{base}/assign/", {"operator_id": str(second_operator.pk)})
    refused = operator_admin_client.post(f"{base}/assign/", {"operator_id": "abc"}, follow=True)

    assert list(InternalNote.objects.values_list("note", flat=True)) == ["Check the invoice first"]
    escalation.refresh_from_db()
    assert escalation.assigned_to_id == second_operator.pk
    assert [str(m) for m in refused.context["messages"]][-1] == "Choose a colleague from the list."


@pytest.mark.django_db
def test_customer_panel_lists_other_conversations(
    escalated: Callable[..., Escalation], operator_admin_client: Client, customer: User
) -> None:
    other = ConversationFactory(customer=customer, status="resolved")
    escalation = escalated()
    content = operator_admin_client.get(
        f"/admin/escalations/escalation/{escalation.pk}/change/"
    ).content.decode()
    assert customer.email in content
    assert f"/admin/messaging/conversation/{other.pk}/change/" in content
    assert "Other conversations (1)" in content


@pytest.mark.django_db
def test_staff_outside_the_operators_group_cannot_note_or_assign(
    escalated: Callable[..., Escalation], operator: User
) -> None:
    """Staff without the Operators group's rights see the admin but cannot work escalations:
    the admin's doors refuse like the REST tier does, and nothing changes."""
    from escalations.models import InternalNote

    escalation = escalated()
    operator.groups.clear()  # staff, but not in the Operators group
    client = _signed_in(operator)
    before = database_state()
    base = f"/admin/escalations/escalation/{escalation.pk}"

    noted = client.post(f"{base}/notes/", {"note": "hello"})
    assigned = client.post(f"{base}/assign/", {})

    assert (noted.status_code, assigned.status_code) == (403, 403)
    assert not InternalNote.objects.exists()
    assert database_state() == before


@pytest.mark.django_db
def test_assign_to_starts_empty_and_lists_online_colleagues_with_room_first(
    escalated: Callable[..., Escalation], operator_admin_client: Client, operators_group: Any
) -> None:
    from escalations import presence
    from tests.factories import OperatorFactory, SuperuserFactory

    SuperuserFactory(username="aaroot", display_name="Root")  # first by name, as before
    busy = OperatorFactory(username="bea", display_name="Bea")
    free = OperatorFactory(username="zed", display_name="Zed")
    presence.lease_renew(user_id=free.pk, socket_id="page")
    escalation = escalated()

    content = operator_admin_client.get(
        f"/admin/escalations/escalation/{escalation.pk}/change/"
    ).content.decode()

    select = content[content.index('id="parley-colleague"') : content.index("</select>")]
    options = re.findall(r'<option value="(\d*)"', select)
    # Nothing is picked by default: no more assigning to the superuser by accident.
    assert '<option value="" selected disabled>Choose a colleague…</option>' in select
    assert options[0] == ""
    assert options[1] == str(free.pk)  # online, with room
    assert "Zed (zed) · online, 0/5" in select
    assert f'value="{busy.pk}"' in select
