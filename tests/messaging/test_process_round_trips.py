"""Database round trips of one `POST /messages/process`, pinned: the hot path's cost is mostly
per round trip (docs/benchmarks.md), so a change that adds one must show up here.

Two views. Statements, on both databases, as Django logs them (inside the test's transaction).
And, on PostgreSQL, the round trips on the wire: a transactional test (autocommit, as in
production) traces the connection's protocol messages with libpq's trace and counts the
exchanges (each ends at a Sync or a simple Query), so a BEGIN or COMMIT sent by psycopg counts
too, which Django's query log never shows; psycopg's one-time preparation of a statement is
counted apart. Redis (rate limit, push) is not counted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from integrations.models import WebhookEndpoint, WebhookEvent
from messaging.models import Conversation
from tests.factories import ConversationFactory, MessageFactory
from tests.messages import post_message

# The common turn (an active conversation the agent answers) runs through messaging.fastpath:
#   1. auth and the agent's context: the token's user and both deny-lists (jti, refresh
#      family), with the conversation and its recent messages read in the same fixed
#      statement (accounts.fastauth.ReadAlong, messaging.fastpath.agent_context_along);
#   2. the turn itself with its events: on PostgreSQL one `WITH … UPDATE … RETURNING` feeding
#      the INSERT of both messages and the webhook outbox's INSERT of their message.created
#      events — in autocommit its own transaction, so no BEGIN and no COMMIT. On SQLite, which
#      cannot chain data-modifying statements, the UPDATE, the INSERT of the messages and the
#      outbox's INSERT in one transaction (2, 2b, 2c).
# Before the wiring it was 6 statements (a separate SELECT … FOR UPDATE, INSERT and UPDATE)
# plus BEGIN/COMMIT; before the turn carried its events, 4 statements plus BEGIN/COMMIT; before
# the context travelled with the token lookup, 3.
STATEMENTS = 2 if connection.vendor == "postgresql" else 4
ROUND_TRIPS_ON_POSTGRESQL = 2


def _process(
    client: Client, customer: User, conversation: Conversation, key: str | None = None
) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    response = post_message(
        client, customer, "How do I reset my password?", conversation.pk, **headers
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "success"  # the agent path, not an escalation
    return response


@pytest.mark.django_db
def test_statements_of_one_process_request(customer: User, customer_client: Client) -> None:
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation)
    with CaptureQueriesContext(connection) as captured:
        _process(customer_client, customer, conversation)
    sqls = [q["sql"] for q in captured.captured_queries]
    assert len(sqls) == STATEMENTS, sqls
    # No transaction of its own on PostgreSQL: inside the test's, an atomic block would show as
    # a SAVEPOINT.
    assert not [s for s in sqls if s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]


@pytest.mark.django_db
def test_statements_do_not_grow_with_the_conversation(
    customer: User, customer_client: Client, django_assert_num_queries: Any
) -> None:
    conversation = ConversationFactory(customer=customer)
    for _ in range(30):
        MessageFactory(conversation=conversation)
    with django_assert_num_queries(STATEMENTS):
        _process(customer_client, customer, conversation)


def _wire_round_trips(trace: Path, action: Any) -> tuple[int, list[str]]:
    """Run `action` with the default connection's protocol traced; the exchanges that ran a
    statement (the server's ReadyForQuery after anything but a bare preparation) and the
    frontend's messages.

    A fixed statement's run number DB_PREPARE_THRESHOLD + 1 on a connection first prepares it:
    psycopg sends `Parse "_pg3_N"` + `Sync` as an exchange of its own, once per statement and
    connection (see test_preparing_is_once_per_statement_and_connection); those are not counted."""
    from psycopg import pq

    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    with trace.open("w") as out:
        pgconn.trace(out.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            action()
        finally:
            pgconn.untrace()
    sent = [line for line in trace.read_text().splitlines() if line.startswith("F")]
    return sum(1 for exchange in _exchanges(sent) if not _is_preparation(exchange)), sent


def _exchanges(sent: list[str]) -> list[list[str]]:
    """The frontend's messages, one list per exchange (each ends at Sync or a simple Query)."""
    exchanges: list[list[str]] = [[]]
    for line in sent:
        kind = line.split("\t")[2]
        exchanges[-1].append(kind)
        if kind in ("Sync", "Query"):
            exchanges.append([])
    return [exchange for exchange in exchanges if exchange]


def _is_preparation(exchange: list[str]) -> bool:
    return exchange == ["Parse", "Sync"]


def _transaction_control(sent: list[str]) -> list[str]:
    # psycopg sends BEGIN and COMMIT as simple queries: `F <length> Query "BEGIN"`.
    return [line for line in sent if re.search(r'\bQuery\s+"(BEGIN|COMMIT|ROLLBACK)', line)]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="protocol trace: PostgreSQL")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("endpoint", [False, True], ids=["no-endpoint", "endpoint"])
def test_round_trips_on_the_wire(
    customer: User, customer_client: Client, tmp_path: Path, endpoint: bool
) -> None:
    """Two exchanges with the server, whether or not a webhook endpoint takes the events,
    and never a BEGIN or COMMIT: the turn's statement is its own transaction."""
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation)
    if endpoint:
        WebhookEndpoint.objects.create(
            url="https://hooks.example.com/in", events=["message.created"], secret="whsec_x"
        )
    assert connection.get_autocommit()

    round_trips, sent = _wire_round_trips(
        tmp_path / "trace", lambda: _process(customer_client, customer, conversation)
    )

    assert round_trips == ROUND_TRIPS_ON_POSTGRESQL, sent
    assert _transaction_control(sent) == []
    assert WebhookEvent.objects.count() == (2 if endpoint else 0)
    assert Conversation.objects.get(pk=conversation.pk).last_seq == 3


@pytest.mark.skipif(connection.vendor != "postgresql", reason="protocol trace: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_preparing_is_once_per_statement_and_connection(
    customer: User, customer_client: Client, tmp_path: Path
) -> None:
    """Ten messages on one connection: each is two executing exchanges; the run that reaches
    DB_PREPARE_THRESHOLD adds one bare preparation per statement (earlier tests may already
    have run some on this connection), never twice, and none once both are prepared."""
    conversation = ConversationFactory(customer=customer)
    preparations = []
    prepared_names: list[str] = []
    for n in range(10):
        round_trips, sent = _wire_round_trips(
            tmp_path / f"trace-{n}", lambda: _process(customer_client, customer, conversation)
        )
        assert round_trips == ROUND_TRIPS_ON_POSTGRESQL, sent
        assert _transaction_control(sent) == []
        preparations.append(sum(_is_preparation(e) for e in _exchanges(sent)))
        prepared_names += re.findall(r'\tParse\t "(_pg3_\d+)"', "\n".join(sent))
    assert sum(preparations) <= 2  # auth with the context, turn: each prepared at most once
    assert len(prepared_names) == len(set(prepared_names))
    assert preparations[-3:] == [0, 0, 0]  # all prepared by then: two exchanges in all


@pytest.mark.skipif(connection.vendor != "postgresql", reason="protocol trace: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_the_trace_counts_begin_and_commit(tmp_path: Path) -> None:
    """The counter itself: a transaction of one statement is three exchanges."""
    from django.db import transaction

    def one_statement_in_a_transaction() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    round_trips, sent = _wire_round_trips(tmp_path / "trace", one_statement_in_a_transaction)
    assert round_trips == 3, sent
    assert len(_transaction_control(sent)) == 2, sent


# A keyed send (Idempotency-Key) is one transaction that holds the key's claim
# (messaging/idempotency.py): BEGIN; the claim (an advisory lock) and the key's record in one
# statement; the turn; the record's INSERT; COMMIT -- plus auth with the agent's context, 6 on
# the wire. Its replay: auth, BEGIN, the claim and record, COMMIT -- 4. Before the claim was
# tied to the transaction (a row committed first, completed later) they were 9 and 6; before
# the context travelled with the token lookup, the first was 7.
KEYED_ROUND_TRIPS_ON_POSTGRESQL = {"first": 6, "replay": 4}
# Django's log of the same, inside the test's transaction (the claim's atomic block shows as a
# SAVEPOINT and its RELEASE; the turn is 3 statements on SQLite, 1 on PostgreSQL).
KEYED_STATEMENTS = {"first": 6 if connection.vendor == "postgresql" else 8, "replay": 4}


@pytest.mark.django_db
def test_statements_of_a_keyed_send_and_its_replay(
    customer: User, customer_client: Client, django_assert_num_queries: Any
) -> None:
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation)
    with django_assert_num_queries(KEYED_STATEMENTS["first"]):
        first = _process(customer_client, customer, conversation, "k-1")
    with django_assert_num_queries(KEYED_STATEMENTS["replay"]):
        replay = _process(customer_client, customer, conversation, "k-1")
    assert "Idempotent-Replayed" not in first
    assert replay["Idempotent-Replayed"] == "true"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="protocol trace: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_round_trips_of_a_keyed_send_and_its_replay(
    customer: User, customer_client: Client, tmp_path: Path
) -> None:
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation)
    for n in range(6):  # past DB_PREPARE_THRESHOLD: the statements are prepared by now
        _process(customer_client, customer, conversation, f"warm-{n}")

    first, sent_first = _wire_round_trips(
        tmp_path / "first", lambda: _process(customer_client, customer, conversation, "k-1")
    )
    replay, sent_replay = _wire_round_trips(
        tmp_path / "replay", lambda: _process(customer_client, customer, conversation, "k-1")
    )

    assert {"first": first, "replay": replay} == KEYED_ROUND_TRIPS_ON_POSTGRESQL, (
        sent_first,
        sent_replay,
    )
    assert len(_transaction_control(sent_first)) == 2  # BEGIN, COMMIT
    assert len(_transaction_control(sent_replay)) == 2
