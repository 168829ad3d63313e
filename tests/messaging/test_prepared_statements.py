"""core.fixedsql: the hot path's fixed statements are bound on the server and prepared by
PostgreSQL once per connection; the ORM keeps Django's client-side binding (its SQL is not
always preparable). PostgreSQL only: SQLite has no prepared-statement view to look at."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import fastauth
from accounts.models import User
from messaging import fastpath
from messaging.models import Conversation
from tests.factories import ConversationFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only"),
]


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_fixed_statements_are_prepared_after_the_threshold(customer: User) -> None:
    threshold = connection.connection.prepare_threshold
    assert threshold is not None
    assert threshold >= 1
    conversation = ConversationFactory(customer=customer)
    for _ in range(threshold + 1):
        fastauth.user_with_revocation(user_id=customer.pk, jti="j", family="f")
        fastpath.agent_context(customer_id=customer.pk, conversation_id=conversation.pk)
        written = fastpath.turn_write(
            conversation_id=conversation.pk,
            customer_id=customer.pk,
            text="hi",
            reply_text="hello",
            intent="greeting",
            confidence=0.9,
            metadata={"fallback": False},
        )
        assert written is not None

    prepared = _prepared()
    user_table = User._meta.db_table
    conversation_table = Conversation._meta.db_table
    assert any(f"FROM {user_table} u" in s for s in prepared), prepared
    assert any(s.startswith(f"WITH c AS (UPDATE {conversation_table}") for s in prepared), prepared
    assert any(f"FROM {conversation_table} LEFT JOIN" in s for s in prepared), prepared
    # Values travel apart from the statement, as $n parameters.
    hot = [s for s in prepared if conversation_table in s or f"FROM {user_table} u" in s]
    assert all("$1" in s and "'hi'" not in s and "'j'" not in s for s in hot), hot


def test_orm_queries_stay_bound_on_the_client(customer: User) -> None:
    with CaptureQueriesContext(connection) as captured:
        for _ in range(8):
            list(Conversation.objects.filter(customer=customer))
    assert len(captured) == 8
    assert not any(conversation_table_query(s) for s in _prepared())


def conversation_table_query(statement: str) -> bool:
    return statement.startswith(f'SELECT "{Conversation._meta.db_table}"')
