"""GET /conversations/{id}/history and GET /conversations: paging and pinned query counts."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client

from accounts.models import User
from messaging.models import Conversation
from tests.factories import ConversationFactory, MessageFactory
from tests.messages import MESSAGE_KEYS, post_message


@pytest.fixture
def long_conversation(customer: User) -> Conversation:
    conversation = ConversationFactory(customer=customer)
    for n in range(1, 11):
        MessageFactory(
            conversation=conversation, role="customer" if n % 2 else "agent", content=f"m{n}"
        )
    return conversation


def _history(client: Client, conversation: Conversation, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/v1/conversations/{conversation.pk}/history?{query}")
    assert response.status_code == 200
    return response.json()


def _seqs(body: dict[str, Any]) -> list[int]:
    return [m["seq"] for m in body["messages"]]


@pytest.mark.django_db
def test_history_items_have_the_spec_shape(
    customer_client: Client, long_conversation: Conversation
) -> None:
    body = _history(customer_client, long_conversation, "limit=1")
    assert body["conversation_id"] == long_conversation.pk
    assert set(body["messages"][0]) == MESSAGE_KEYS


@pytest.mark.parametrize(
    ("query", "seqs", "has_more"),
    [
        # Without a cursor: the latest, in ascending order.
        ("limit=4", [7, 8, 9, 10], True),
        ("", list(range(1, 11)), False),
        # after_seq pages forward.
        ("after_seq=0&limit=4", [1, 2, 3, 4], True),
        ("after_seq=8&limit=4", [9, 10], False),
        ("after_seq=10", [], False),
        # before_seq pages backward.
        ("before_seq=7&limit=3", [4, 5, 6], True),
        ("before_seq=3&limit=3", [1, 2], False),
        # Both bound a window.
        ("after_seq=2&before_seq=6", [3, 4, 5], False),
    ],
)
@pytest.mark.django_db
def test_history_pages(
    customer_client: Client,
    long_conversation: Conversation,
    query: str,
    seqs: list[int],
    has_more: bool,
) -> None:
    body = _history(customer_client, long_conversation, query)
    assert (_seqs(body), body["has_more"]) == (seqs, has_more)


@pytest.mark.django_db
def test_history_query_count_is_pinned(
    customer_client: Client, long_conversation: Conversation, django_assert_num_queries: Any
) -> None:
    # user + revocation check (1), the conversation's ownership and the page in one statement
    # (messaging.fastpath.history_page) (1); it was 3 with the selectors' two queries
    with django_assert_num_queries(2):
        _history(customer_client, long_conversation, "limit=50")


@pytest.mark.django_db
def test_conversation_list_newest_activity_first_with_cursor(
    customer_client: Client, customer: User
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    made = [
        ConversationFactory(customer=customer, updated_at=now - timedelta(minutes=n))
        for n in range(5)
    ]
    first = customer_client.get("/api/v1/conversations?limit=2").json()
    assert [i["id"] for i in first["items"]] == [made[0].pk, made[1].pk]
    assert set(first["items"][0]) == {
        "id",
        "customer_id",
        "status",
        "created_at",
        "updated_at",
        "turn_count",
    }
    second = customer_client.get(
        f"/api/v1/conversations?limit=2&cursor={first['next_cursor']}"
    ).json()
    assert [i["id"] for i in second["items"]] == [made[2].pk, made[3].pk]
    third = customer_client.get(
        f"/api/v1/conversations?limit=2&cursor={second['next_cursor']}"
    ).json()
    assert [i["id"] for i in third["items"]] == [made[4].pk]
    assert third["next_cursor"] is None


@pytest.mark.django_db
def test_conversations_with_equal_timestamps_are_not_skipped(
    customer_client: Client, customer: User
) -> None:
    from django.utils import timezone

    same = timezone.now()
    made = {ConversationFactory(customer=customer, updated_at=same).pk for _ in range(5)}
    seen: list[int] = []
    cursor = ""
    while True:
        page = customer_client.get(f"/api/v1/conversations?limit=2{cursor}").json()
        seen += [i["id"] for i in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert sorted(seen) == sorted(made)
    assert len(seen) == 5


@pytest.mark.django_db
def test_process_query_count_is_pinned(
    customer_client: Client,
    customer: User,
    long_conversation: Conversation,
    django_assert_max_num_queries: Any,
) -> None:
    # auth with the conversation and its recent messages for the agent (1: the context read
    # travels in the token lookup's statement), then the turn's write with its webhook outbox
    # rows (messaging.fastpath.turn_write): one WITH statement on PostgreSQL, its own
    # transaction; on SQLite UPDATE … RETURNING, the INSERT of both messages and the outbox's
    # INSERT in one transaction (inside the test's own it opens no savepoint).
    # tests/messaging/test_process_round_trips.py explains each round trip.
    with django_assert_max_num_queries(4) as captured:
        response = post_message(customer_client, customer, "thanks", long_conversation.pk)
    assert response.status_code == 200
    statements = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    if connection.vendor == "postgresql":
        assert statements == ["SELECT", "WITH"]
    else:
        assert statements == ["SELECT", "UPDATE", "INSERT", "INSERT"]
