"""Database round trips of one `POST /messages/process`, pinned: the hot path's cost is mostly
per round trip (docs/benchmarks.md), so a change that adds one must show up here.

Round trips, not only statements: inside the test's own transaction the service's
`transaction.atomic()` runs as SAVEPOINT / RELEASE SAVEPOINT, which stand for the BEGIN and
COMMIT that production sends (each its own round trip). Redis (rate limit, push) is not counted.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

# The common turn (an active conversation the agent answers) runs through messaging.fastpath:
#   1. auth: the token's user and both deny-lists (jti, refresh family), one fixed statement
#      (accounts.fastauth);
#   2. the agent's context: the conversation with its recent messages, one statement;
#   then one transaction (BEGIN + COMMIT) holding
#   3. the turn itself: on PostgreSQL one `WITH … UPDATE … RETURNING` feeding the INSERT of both
#      messages (the row lock is the UPDATE's); on SQLite, which cannot chain data-modifying
#      statements, the UPDATE and the INSERT one after the other (3 and 3b);
#   4. the webhook outbox's one INSERT for the turn's message.created events.
# Before the wiring it was 6 statements (a separate SELECT … FOR UPDATE, INSERT and UPDATE)
# plus BEGIN/COMMIT.
STATEMENTS = 4 if connection.vendor == "postgresql" else 5
TRANSACTION_CONTROL = 2  # BEGIN + COMMIT in production
ROUND_TRIPS = STATEMENTS + TRANSACTION_CONTROL


def _is_transaction_control(sql: str) -> bool:
    return (
        sql.lstrip()
        .upper()
        .startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "BEGIN", "COMMIT"))
    )


def test_round_trips_of_one_process_request(customer: User, customer_client: Client) -> None:
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation)

    with CaptureQueriesContext(connection) as captured:
        response = customer_client.post(
            "/api/v1/messages/process",
            {
                "message": "How do I reset my password?",
                "customer_id": customer.pk,
                "conversation_id": conversation.pk,
            },
            content_type="application/json",
        )

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "success"  # the agent path, not an escalation
    sqls = [q["sql"] for q in captured.captured_queries]
    control = [s for s in sqls if _is_transaction_control(s)]
    statements = [s for s in sqls if not _is_transaction_control(s)]
    assert len(statements) == STATEMENTS, statements
    assert len(control) == TRANSACTION_CONTROL, control
    assert len(sqls) == ROUND_TRIPS


def test_round_trips_do_not_grow_with_the_conversation(
    customer: User, customer_client: Client, django_assert_num_queries: Any
) -> None:
    conversation = ConversationFactory(customer=customer)
    for _ in range(30):
        MessageFactory(conversation=conversation)
    body = {
        "message": "How do I reset my password?",
        "customer_id": customer.pk,
        "conversation_id": conversation.pk,
    }
    with django_assert_num_queries(ROUND_TRIPS):
        response = customer_client.post(
            "/api/v1/messages/process", body, content_type="application/json"
        )
    assert response.status_code == 200
