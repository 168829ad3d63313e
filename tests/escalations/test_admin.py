"""The operators' admin, driven through Django's test client as an operator of the Operators
group: the queue (list, filters, search, order), the escalation page (transcript, reply box,
view-only fields), the actions, and the statistics page."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.utils import timezone

from accounts.models import User
from escalations.models import Escalation
from escalations.services import OPENED_TEXT, resolved_text
from messaging.models import Message
from tests.escalations.conftest import Committed, staff_post
from tests.factories import ConversationFactory, EscalationFactory, MessageFactory, UserFactory
from tests.pushes import Pushes
from tests.snapshots import database_state

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/escalations/escalation/"


def _change_url(escalation: Escalation) -> str:
    return f"{CHANGELIST}{escalation.pk}/change/"


def _bulk(
    client: Client,
    action: str,
    picked: list[Escalation],
    query: str = "",
    *,
    follow: bool = False,
    **form: str,
) -> Any:
    """The change list's bulk `action` on the escalations `picked` (`form`: the fields of the
    confirmation page, when the action has one)."""
    selected = {"action": action, "_selected_action": [e.pk for e in picked], **form}
    return client.post(f"{CHANGELIST}{query}", selected, follow=follow)


def _listed(response: Any) -> list[int]:
    return [e.pk for e in response.context["cl"].result_list]


@pytest.fixture
def queue(customer: User, other_customer: User, second_operator: User) -> dict[str, Escalation]:
    now = timezone.now()
    return {
        "resolved_oldest": EscalationFactory(
            conversation=ConversationFactory(customer=other_customer, status="resolved"),
            created_at=now - timedelta(days=2),
            status="resolved",
            resolved_at=now,
            assigned_to=second_operator,
            resolved_by=second_operator,
        ),
        "open_new": EscalationFactory(
            conversation=ConversationFactory(customer=customer),
            created_at=now - timedelta(minutes=5),
            reason="Angry complaint",
        ),
        "assigned_old": EscalationFactory(
            conversation=ConversationFactory(customer=other_customer),
            created_at=now - timedelta(hours=3),
            status="assigned",
            assigned_to=second_operator,
        ),
        "open_old": EscalationFactory(
            conversation=ConversationFactory(customer=customer), created_at=now - timedelta(hours=1)
        ),
    }


# --- The queue ------------------------------------------------------------------------------


def test_list_shows_the_unresolved_queue_oldest_first_by_default(
    queue: dict[str, Escalation], operator_admin_client: Client
) -> None:
    response = operator_admin_client.get(CHANGELIST)

    assert response.status_code == 200
    assert _listed(response) == [queue[k].pk for k in ("assigned_old", "open_old", "open_new")]
    content = response.content.decode()
    for column in (
        "column-conversation_number",
        "column-status",
        "column-sla",
        "column-age",
        "column-customer",
        "column-topic",
        "column-assignee",
    ):
        assert column in content
    assert "<h1>Escalations to handle</h1>" in content
    assert "Select escalation to change" not in content
    assert "Angry complaint" not in content  # the reason of a human request says nothing new
    assert "alice" in content
    assert second_name(queue) in content
    assert "3\xa0hours" in content  # the age of the oldest assigned one
    # The conversation's number leads each row, linked to the escalation page.
    old = queue["assigned_old"]
    assert f'href="/admin/escalations/escalation/{old.pk}/change/">#{old.conversation_id}</a>' in (
        content
    )


def second_name(queue: dict[str, Escalation]) -> str:
    holder = queue["assigned_old"].assigned_to
    assert holder is not None
    return holder.public_name


def test_all_is_one_click_away_with_resolved_last(
    queue: dict[str, Escalation], operator_admin_client: Client
) -> None:
    response = operator_admin_client.get(f"{CHANGELIST}?status=all")

    assert _listed(response) == [
        queue[k].pk for k in ("assigned_old", "open_old", "open_new", "resolved_oldest")
    ]
    assert "<h1>Escalations</h1>" in response.content.decode()


def test_topic_shows_the_intent_and_the_customers_last_words(
    operator_admin_client: Client, escalation: Escalation
) -> None:
    MessageFactory(
        conversation=escalation.conversation, role="customer", content="Still <b>waiting</b>!"
    )

    content = operator_admin_client.get(CHANGELIST).content.decode()

    assert '<strong class="parley-topic">Human request</strong>' in content
    assert "“Still &lt;b&gt;waiting&lt;/b&gt;!”" in content


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        ("status=open", ["open_old", "open_new"]),
        ("status=assigned", ["assigned_old"]),
        ("status=resolved", ["resolved_oldest"]),
        ("status=unresolved", ["assigned_old", "open_old", "open_new"]),
        ("assigned_to__isnull=True", ["open_old", "open_new"]),
    ],
)
def test_list_filters(
    queue: dict[str, Escalation], operator_admin_client: Client, query: str, keys: list[str]
) -> None:
    response = operator_admin_client.get(f"{CHANGELIST}?{query}")

    assert response.status_code == 200
    assert _listed(response) == [queue[k].pk for k in keys]


def test_list_filters_by_assignee(
    queue: dict[str, Escalation], operator_admin_client: Client, second_operator: User
) -> None:
    response = operator_admin_client.get(
        f"{CHANGELIST}?status=all&assigned_to__id__exact={second_operator.pk}"
    )

    assert _listed(response) == [queue["assigned_old"].pk, queue["resolved_oldest"].pk]
    # The assignee filter offers only people who hold escalations, not every account.
    filter_html = response.content.decode()
    assert f"assigned_to__id__exact={second_operator.pk}" in filter_html
    assert (
        "assigned_to__id__exact=" + str(queue["open_new"].conversation.customer_id)
        not in filter_html
    )


def test_list_searches_by_customer_username(
    queue: dict[str, Escalation], operator_admin_client: Client
) -> None:
    response = operator_admin_client.get(f"{CHANGELIST}?q=ALIC")

    assert _listed(response) == [queue["open_old"].pk, queue["open_new"].pk]


def test_list_costs_a_fixed_number_of_queries(
    queue: dict[str, Escalation],
    operator_admin_client: Client,
    django_assert_max_num_queries: Any,
) -> None:
    for _ in range(10):
        EscalationFactory()
    # session, user, the Operators group, permissions, counts, the page (customers, assignees
    # and each row's last customer message joined), filters; the team bar: operators, their
    # profiles and loads
    with django_assert_max_num_queries(13):
        operator_admin_client.get(CHANGELIST)


# --- The escalation page ----------------------------------------------------------------------


def test_change_page_shows_the_transcript_and_the_reply_box_but_no_save(
    operator_admin_client: Client, escalation: Escalation
) -> None:
    response = operator_admin_client.get(_change_url(escalation))

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="transcript"' in content
    assert "I want to talk to a human" in content
    assert OPENED_TEXT in content
    assert [m.seq for m in response.context["transcript_messages"]] == [1, 2, 3]
    assert f'action="/admin/escalations/escalation/{escalation.pk}/reply/"' in content
    assert 'name="message"' in content
    assert 'name="_save"' not in content  # every field is read-only: no Save button
    assert "<script>" not in content  # CSP: no inline script


def test_change_page_of_a_resolved_escalation_has_no_reply_box(
    resolved: Callable[..., Escalation], operator_admin_client: Client, operator: User
) -> None:
    escalation = resolved()

    content = operator_admin_client.get(_change_url(escalation)).content.decode()

    assert resolved_text(operator.public_name) in content
    assert "/reply/" not in content


def test_posting_the_change_form_is_refused(
    operator_admin_client: Client, escalation: Escalation
) -> None:
    before = database_state()

    response = operator_admin_client.post(_change_url(escalation), {"status": "resolved"})

    assert response.status_code == 403
    assert database_state() == before


def test_reply_box_stores_an_operator_message_and_pushes_it(
    operator_admin_client: Client,
    admin_operator: User,
    pushed: Pushes,
    committed: Committed,
    escalation: Escalation,
) -> None:
    response = committed(
        lambda: operator_admin_client.post(
            f"{CHANGELIST}{escalation.pk}/reply/", {"message": "Hello from the admin"}
        )
    )

    assert response.status_code == 302
    assert response["Location"] == _change_url(escalation) + "#composer"
    reply = Message.objects.get(conversation_id=escalation.conversation_id, role="operator")
    assert (reply.content, reply.author_id, reply.seq) == (
        "Hello from the admin",
        admin_operator.pk,
        5,
    )
    escalation.refresh_from_db()
    assert (escalation.status, escalation.assigned_to_id) == ("assigned", admin_operator.pk)
    assert escalation.first_response_at == reply.created_at
    group = f"conversation.{escalation.conversation_id}"
    assert pushed.messages(group)[-1]["content"] == "Hello from the admin"
    assert (
        LogEntry.objects.filter(object_id=str(escalation.pk), change_message="Replied").count() == 1
    )
    page = operator_admin_client.get(_change_url(escalation)).content.decode()
    assert "Hello from the admin" in page


def test_reply_box_refuses_a_resolved_escalation(
    resolved: Callable[..., Escalation], operator_admin_client: Client
) -> None:
    escalation = resolved()
    before = database_state()

    response = operator_admin_client.post(
        f"{CHANGELIST}{escalation.pk}/reply/", {"message": "too late"}, follow=True
    )

    assert database_state() == before
    assert [str(m) for m in response.context["messages"]] == [
        f"Conversation #{escalation.conversation_id}: This conversation is not escalated"
    ]


def test_reply_box_refuses_an_empty_message(
    operator_admin_client: Client, escalation: Escalation
) -> None:
    before = database_state()

    operator_admin_client.post(f"{CHANGELIST}{escalation.pk}/reply/", {"message": "   "})

    assert database_state() == before


def test_reply_box_only_accepts_post(operator_admin_client: Client, escalation: Escalation) -> None:
    response = operator_admin_client.get(f"{CHANGELIST}{escalation.pk}/reply/")

    assert response.status_code == 405


def test_staff_outside_the_operators_group_can_neither_see_nor_reply(
    escalation: Escalation,
) -> None:
    client = Client()
    client.force_login(UserFactory(is_staff=True))  # staff, but not in the Operators group
    before = database_state()

    assert client.get(CHANGELIST).status_code == 403
    assert client.post(f"{CHANGELIST}{escalation.pk}/reply/", {"message": "x"}).status_code == 403
    assert database_state() == before


def test_staff_holding_the_permissions_outside_the_group_is_refused_at_every_door(
    escalated: Callable[..., Escalation], client_for: Callable[..., Client]
) -> None:
    """The rule is the Operators group (or superuser), not a permission granted by hand: staff
    given the escalation permissions directly are no operators, in the admin or over REST."""
    from django.contrib.auth.models import Permission

    first, second = escalated(), escalated()
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label__in=["escalations", "messaging"],
            codename__in=["view_escalation", "change_escalation", "view_conversation"],
        )
    )
    admin = Client()
    admin.force_login(staff)
    before = database_state()

    assert admin.get(CHANGELIST).status_code == 403
    assert admin.get(_change_url(first)).status_code == 403
    assert (
        admin.get(f"/admin/messaging/conversation/{first.conversation_id}/change/").status_code
        == 403
    )
    assert admin.get("/admin/statistics/").status_code == 403
    response = admin.post(f"{CHANGELIST}{first.pk}/reply/", {"message": "From the admin"})
    assert response.status_code == 403
    rest = client_for(staff)
    assert rest.get("/api/v1/escalations").status_code == 403
    reply = staff_post(rest, second.conversation_id, "reply", {"message": "From REST"})
    assert reply.status_code == 403
    assert not Message.objects.filter(author=staff).exists()
    assert database_state() == before


def test_page_buttons_assign_and_resolve(
    operator_admin_client: Client, admin_operator: User, escalation: Escalation
) -> None:
    page = operator_admin_client.get(_change_url(escalation)).content.decode()
    assert f"{CHANGELIST}{escalation.pk}/assign/" in page
    assert f"{CHANGELIST}{escalation.pk}/resolve/" in page

    operator_admin_client.post(f"{CHANGELIST}{escalation.pk}/assign/")
    escalation.refresh_from_db()
    assert (escalation.status, escalation.assigned_to_id) == ("assigned", admin_operator.pk)

    operator_admin_client.post(
        f"{CHANGELIST}{escalation.pk}/resolve/", {"resolution_notes": "Sorted"}
    )
    escalation.refresh_from_db()
    assert (escalation.status, escalation.resolution_notes, escalation.resolved_by_id) == (
        "resolved",
        "Sorted",
        admin_operator.pk,
    )


# --- Actions ----------------------------------------------------------------------------------


def test_assign_to_me_action(
    queue: dict[str, Escalation],
    operator_admin_client: Client,
    admin_operator: User,
    second_operator: User,
) -> None:
    picked = [queue["open_old"], queue["assigned_old"], queue["resolved_oldest"]]

    response = _bulk(operator_admin_client, "assign_to_me", picked, "?status=all", follow=True)

    assert response.status_code == 200
    for escalation in picked:
        escalation.refresh_from_db()
    assert (picked[0].status, picked[0].assigned_to_id) == ("assigned", admin_operator.pk)
    # Held by a colleague: the bulk action never takes over (the escalation page does, on
    # purpose), so it is unchanged.
    assert picked[1].assigned_to_id == second_operator.pk
    assert picked[2].status == "resolved"
    assert [str(m) for m in response.context["messages"]] == [
        f"Conversation #{picked[1].conversation_id}: held by {second_operator.public_name}; "
        "open it to take over.",
        "Assigned 1 escalation(s) to you.",
        "Skipped 1 resolved escalation(s).",
    ]
    joined = Message.objects.filter(conversation_id=picked[0].conversation_id, role="system")
    assert joined.count() == 1  # the factory-built escalation had no hand-off message


def test_resolve_action_asks_for_notes_first(
    queue: dict[str, Escalation], operator_admin_client: Client
) -> None:
    picked = [queue["open_old"], queue["open_new"]]
    before = [database_state() for e in picked]

    response = _bulk(operator_admin_client, "resolve_selected", picked)

    assert response.status_code == 200
    assert response.templates[0].name == "admin/escalations/escalation/resolve_selected.html"
    content = response.content.decode()
    assert 'name="resolution_notes"' in content
    assert 'name="post" value="yes"' in content
    assert sorted(
        int(v) for v in re.findall(r'name="_selected_action" value="(\d+)"', content)
    ) == sorted(e.pk for e in picked)
    assert [database_state() for e in picked] == before


def test_resolve_action_resolves_with_the_notes(
    queue: dict[str, Escalation], operator_admin_client: Client, admin_operator: User
) -> None:
    picked = [queue["open_old"], queue["assigned_old"]]

    response = _bulk(
        operator_admin_client,
        "resolve_selected",
        picked,
        follow=True,
        post="yes",
        resolution_notes="Bulk: outage over",
    )

    assert response.status_code == 200
    for escalation in picked:
        escalation.refresh_from_db()
        assert (escalation.status, escalation.resolution_notes, escalation.resolved_by_id) == (
            "resolved",
            "Bulk: outage over",
            admin_operator.pk,
        )
        assert escalation.conversation.status == "resolved"
        assert (
            Message.objects.filter(
                conversation_id=escalation.conversation_id,
                content=resolved_text(admin_operator.public_name),
            ).count()
            == 1
        )
    assert [str(m) for m in response.context["messages"]] == ["Resolved 2 escalation(s)."]


def test_no_delete_action_and_no_add(
    queue: dict[str, Escalation], operator_admin_client: Client
) -> None:
    response = operator_admin_client.get(CHANGELIST)

    actions = [value for value, _ in response.context["action_form"].fields["action"].choices]
    assert actions == ["", "assign_to_me", "resolve_selected"]
    assert operator_admin_client.get(f"{CHANGELIST}add/").status_code == 403
    escalation = queue["open_old"]
    assert (
        operator_admin_client.post(
            f"{CHANGELIST}{escalation.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert Escalation.objects.filter(pk=escalation.pk).exists()


# --- Conversations and messages: read-only ----------------------------------------------------


def test_conversations_and_messages_are_read_only_for_operators(
    operator_admin_client: Client, escalation: Escalation
) -> None:
    conversation_url = f"/admin/messaging/conversation/{escalation.conversation_id}/change/"
    message = Message.objects.filter(conversation_id=escalation.conversation_id).first()
    assert message is not None
    before = database_state()

    assert operator_admin_client.get("/admin/messaging/conversation/").status_code == 200
    assert operator_admin_client.get("/admin/messaging/message/").status_code == 200
    page = operator_admin_client.get(conversation_url)
    assert page.status_code == 200
    assert "I want to talk to a human" in page.content.decode()  # the transcript
    assert 'name="_save"' not in page.content.decode()
    assert operator_admin_client.post(conversation_url, {"status": "active"}).status_code == 403
    assert operator_admin_client.get("/admin/messaging/conversation/add/").status_code == 403
    assert (
        operator_admin_client.post(
            f"/admin/messaging/message/{message.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert (
        operator_admin_client.post(
            f"/admin/messaging/message/{message.pk}/change/", {"content": "edited"}
        ).status_code
        == 403
    )
    assert database_state() == before


def test_superuser_can_still_delete_a_customer_with_their_conversations(
    escalated: Callable[..., Escalation], superuser: User
) -> None:
    owner = UserFactory(username="leaving")
    escalation = escalated(owner)
    client = Client()
    client.force_login(superuser)

    response = client.post(f"/admin/accounts/user/{owner.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(pk=owner.pk).exists()
    assert not Escalation.objects.filter(pk=escalation.pk).exists()


# --- Statistics page --------------------------------------------------------------------------


def test_statistics_page_renders_figures_and_charts_for_operators(
    operator_admin_client: Client, customer: User, django_assert_max_num_queries: Any
) -> None:
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation, role="customer", intent="billing")
    MessageFactory(conversation=conversation, role="agent", intent="billing")

    # session + user + Operators group + 4 statistics + csat + 2 per-day + per-operator counts
    with django_assert_max_num_queries(13):
        response = operator_admin_client.get("/admin/statistics/")

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="fig-conversations_total">1<' in content
    assert 'id="fig-messages_total">2<' in content
    assert 'id="fig-conversations_resolved_by_agent">1<' in content
    assert 'id="fig-escalation_rate">0.0 %<' in content
    assert content.count('<svg class="parley-svg"') == 3  # per day ×2, intents
    assert content.count('class="parley-bar"') == 60  # 30 days × 2 charts
    assert "billing: 1 (100.0 %)" in content
    assert "<script>" not in content
    assert " style=" not in content
    assert "Content-Security-Policy" in response.headers
    assert "admin/parley/parley.css" in content


def test_statistics_page_shows_percentiles_rates_and_each_operator(
    operator_admin_client: Client, admin_operator: User, second_operator: User
) -> None:
    now = timezone.now().replace(microsecond=0)
    for operator, waits in ((admin_operator, (30, 90)), (second_operator, (600,))):
        for wait in waits:
            EscalationFactory(
                conversation=ConversationFactory(status="escalated"),
                created_at=now,
                assigned_to=operator,
                status="assigned",
                first_response_at=now + timedelta(seconds=wait),
            )

    content = operator_admin_client.get("/admin/statistics/").content.decode()

    # Overall first reply: 30, 90, 600 → p50 90 s, p90 8 min 18 s.
    assert '<tr><th scope="row">50 %</th><td>1 min 30 s</td><td>—</td></tr>' in content
    assert '<tr><th scope="row">90 %</th><td>8 min 18 s</td><td>—</td></tr>' in content
    assert 'id="fig-sla_breach_rate">0.0 %<' in content
    assert 'id="fig-bot_resolved_rate">0.0 %<' in content
    operators = content[content.index('id="parley-operators"') :]
    assert f'<th scope="row">{admin_operator.public_name}</th><td>2</td>' in operators
    assert f'<th scope="row">{second_operator.public_name}</th><td>1</td>' in operators
    assert operators.count('class="parley-bar parley-bar-p90"') == 2
    assert " style=" not in content


def test_statistics_page_takes_a_period_and_explains_a_bad_one(
    operator_admin_client: Client,
) -> None:
    ConversationFactory(created_at=timezone.now() - timedelta(days=40))
    ConversationFactory()
    today = timezone.localdate().isoformat()

    recent = operator_admin_client.get(f"/admin/statistics/?from={today}").content.decode()
    bad = operator_admin_client.get("/admin/statistics/?from=2026-05-02&to=2026-05-01")

    assert 'id="fig-conversations_total">1<' in recent
    assert bad.status_code == 200
    assert "Showing all time" in bad.content.decode()
    assert 'id="fig-conversations_total">2<' in bad.content.decode()


def test_admin_index_links_to_statistics(operator_admin_client: Client) -> None:
    content = operator_admin_client.get("/admin/").content.decode()

    assert 'href="/admin/statistics/"' in content
    assert 'href="/admin/escalations/escalation/"' in content
    assert 'href="/admin/accounts/' not in content  # superuser-only apps stay hidden


def test_statistics_page_refuses_customers_and_anonymous(
    customer: User, anonymous_client: Client
) -> None:
    client = Client()
    client.force_login(customer)

    for c in (client, anonymous_client):
        response = c.get("/admin/statistics/")
        assert response.status_code == 302
        assert response["Location"] == "/admin/login/?next=/admin/statistics/"


def test_resolve_action_on_resolved_ones_only_warns(
    queue: dict[str, Escalation], operator_admin_client: Client
) -> None:
    before = database_state()

    response = _bulk(
        operator_admin_client, "resolve_selected", [queue["resolved_oldest"]], follow=True
    )

    assert [str(m) for m in response.context["messages"]] == [
        "None of the selected escalations is unresolved."
    ]
    assert database_state() == before


def test_resolve_action_keeps_the_page_when_notes_are_too_long(
    queue: dict[str, Escalation], operator_admin_client: Client
) -> None:
    before = database_state()

    response = _bulk(
        operator_admin_client,
        "resolve_selected",
        [queue["open_old"]],
        post="yes",
        resolution_notes="x" * 4001,
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "resolution_notes": ["Ensure this value has at most 4000 characters (it has 4001)."]
    }
    assert database_state() == before


# --- Search, ids, presence and routing profiles ---------------------------------------------


def test_search_box_finds_escalations_by_the_words_of_their_messages(
    queue: dict[str, Escalation], operator_admin_client: Client
) -> None:
    target = queue["open_new"]
    MessageFactory(conversation=target.conversation, content="My <parcel> never arrived")
    MessageFactory(conversation=queue["resolved_oldest"].conversation, content="parcel too")

    response = operator_admin_client.get(f"{CHANGELIST}?q=parcel")
    everything = operator_admin_client.get(f"{CHANGELIST}?q=parcel&status=all")

    assert _listed(response) == [target.pk]
    assert _listed(everything) == [target.pk, queue["resolved_oldest"].pk]
    content = response.content.decode()
    assert 'id="parley-search-hits"' in content
    assert "My &lt;<mark>parcel</mark>&gt; never arrived" in content
    # The username search still works beside it.
    assert _listed(operator_admin_client.get(f"{CHANGELIST}?q=ALIC")) == [
        queue["open_old"].pk,
        queue["open_new"].pk,
    ]


def test_the_escalation_page_names_both_ids_for_what_they_are(
    operator_admin_client: Client, escalation: Escalation
) -> None:
    Escalation.objects.filter(pk=escalation.pk).update(id=escalation.pk + 40)
    escalation = Escalation.objects.get(pk=escalation.pk + 40)

    content = operator_admin_client.get(_change_url(escalation)).content.decode()

    cid = escalation.conversation_id
    assert f"conversation #{cid}</h2>" in content
    assert f"<code>/escalations/{cid}/…</code>" in content
    assert f"<dt>Escalation record</dt><dd>{escalation.pk} " in content
    assert f"<title>Conversation #{cid} (escalation {escalation.pk}, open)" in content


def test_the_away_switch_uses_the_presence_service(
    operator_admin_client: Client, admin_operator: User
) -> None:
    from escalations.models import OperatorProfile

    away = operator_admin_client.post(f"{CHANGELIST}presence/", {"status": "away"}, follow=True)
    assert OperatorProfile.objects.get(user=admin_operator).away is True
    assert "You are away" in away.content.decode()
    operator_admin_client.post(f"{CHANGELIST}presence/", {"status": "online"})
    assert OperatorProfile.objects.get(user=admin_operator).away is False
    refused = operator_admin_client.post(f"{CHANGELIST}presence/", {"status": "gone"}, follow=True)
    assert [str(m) for m in refused.context["messages"]][-1] == (
        "status must be 'online' or 'away'"
    )
    assert OperatorProfile.objects.get(user=admin_operator).away is False
    assert operator_admin_client.get(f"{CHANGELIST}presence/").status_code == 405


def test_routing_profiles_are_for_superusers(
    operator_admin_client: Client,
    admin_operator: User,
    superuser: User,
    settings: Any,
    committed: Committed,
) -> None:
    from escalations import presence
    from escalations.models import OperatorProfile

    assert operator_admin_client.get("/admin/escalations/operatorprofile/").status_code == 403
    root = Client()
    root.force_login(superuser)
    settings.ASSIGNMENT_MODE = "auto"
    waiting = EscalationFactory()
    OperatorProfile.objects.create(user=admin_operator, capacity=0)
    presence.lease_renew(user_id=admin_operator.pk, socket_id="page")

    response = committed(
        lambda: root.post(
            f"/admin/escalations/operatorprofile/{admin_operator.pk}/change/",
            {"capacity": "2", "away": ""},
        )
    )

    assert response.status_code == 302
    assert OperatorProfile.objects.get(user=admin_operator).capacity == 2
    waiting.refresh_from_db()
    # Raising the capacity drained the queue (the admin's save commits, then assigns).
    assert waiting.assigned_to_id == admin_operator.pk
