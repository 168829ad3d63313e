"""Two operators acting on one escalation at the same moment: exactly one wins, and the
transcript stays gap-free. Real threads and real transactions (SQLite: BEGIN IMMEDIATE;
PostgreSQL: SELECT … FOR UPDATE on the conversation row)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from accounts.models import User
from core.errors import Conflict, NotFound
from escalations import services
from escalations.models import Escalation
from escalations.services import resolved_text
from messaging.models import Conversation, Message
from tests.escalations.conftest import transcript_of
from tests.factories import OperatorFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in parallel threads released together; each result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[index] = exc
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def _operators(count: int) -> list[User]:
    return [OperatorFactory(username=f"op{i}") for i in range(count)]


def test_concurrent_resolve_exactly_one_wins(escalation: Escalation) -> None:
    operators = _operators(4)

    results = _race(
        [
            lambda op=op: services.escalation_resolve(
                conversation_id=escalation.conversation_id, actor=op, notes=f"by {op.username}"
            )
            for op in operators
        ]
    )

    winners = [r for r in results if isinstance(r, Escalation)]
    losers = [r for r in results if isinstance(r, NotFound)]
    assert (len(winners), len(losers)) == (1, 3), results
    escalation.refresh_from_db()
    assert escalation.status == "resolved"
    assert escalation.resolved_by_id == winners[0].resolved_by_id
    assert escalation.resolution_notes == f"by {winners[0].resolved_by.username}"
    messages = transcript_of(escalation.conversation_id)
    assert [seq for seq, _, _ in messages] == [1, 2, 3, 4]
    assert messages[3] == (4, "system", resolved_text(winners[0].resolved_by.public_name))
    assert Conversation.objects.get(pk=escalation.conversation_id).status == "resolved"


def test_concurrent_assigns_are_serialised(escalation: Escalation) -> None:
    """Two operators assigning at once: one joins, the other takes over from them (SPEC §4:
    assigning one a colleague holds is a takeover), one after the other under the lock."""
    first, second = _operators(2)

    results = _race(
        [
            lambda: services.escalation_assign(
                conversation_id=escalation.conversation_id, actor=first
            ),
            lambda: services.escalation_assign(
                conversation_id=escalation.conversation_id, actor=second
            ),
        ]
    )

    assert all(isinstance(r, Escalation) for r in results), results
    escalation.refresh_from_db()
    assert escalation.status == "assigned"
    transcript = transcript_of(escalation.conversation_id)
    assert [seq for seq, _, _ in transcript] == [1, 2, 3, 4, 5]
    joined, took_over = transcript[3][2], transcript[4][2]
    holder = first if escalation.assigned_to_id == first.pk else second
    other = second if holder is first else first
    assert joined == f"{other.public_name} joined the conversation."
    assert took_over == (
        f"{holder.public_name} took over the conversation from {other.public_name}."
    )


def test_concurrent_replies_and_resolve_keep_seq_gap_free(escalation: Escalation) -> None:
    operators = _operators(4)

    results = _race(
        [
            *[
                lambda op=op: services.escalation_reply(
                    conversation_id=escalation.conversation_id,
                    actor=op,
                    text=f"hi from {op.username}",
                )
                for op in operators[:3]
            ],
            lambda: services.escalation_resolve(
                conversation_id=escalation.conversation_id, actor=operators[3], notes=""
            ),
        ]
    )

    assert not [r for r in results if not isinstance(r, Message | Escalation | Conflict)], results
    seqs = [seq for seq, _, _ in transcript_of(escalation.conversation_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    conversation = Conversation.objects.get(pk=escalation.conversation_id)
    assert conversation.last_seq == len(seqs)
    replies = [r for r in results if isinstance(r, Message)]
    assert Message.objects.filter(conversation=conversation, role="operator").count() == len(
        replies
    )
