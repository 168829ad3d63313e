"""messaging.fastpath behaves exactly like the general ORM path it stands in for, on SQLite and
on PostgreSQL: same rows, same seqs, gap-free under concurrent writers, ownership and status in
the statement itself (a foreign, escalated or resolved conversation is left untouched)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from messaging import fastpath
from messaging.models import MAX_ID, Conversation, Message
from messaging.schemas import message_payload
from messaging.services import (
    NewMessage,
    conversation_append,
    conversation_lock,
    conversation_save,
)
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

REPLY = {
    "reply_text": "You can reset it from the sign-in page.",
    "intent": "account",
    "confidence": 0.87,
    "metadata": {"source": "rules", "fallback": False},
}
MESSAGE_FIELDS = (
    "seq",
    "role",
    "content",
    "intent",
    "confidence",
    "author_id",
    "metadata",
)
CONVERSATION_FIELDS = ("status", "turn_count", "agent_turns", "last_seq", "customer_id")


def general_turn(conversation: Conversation, customer: User, text: str) -> None:
    """What messaging.services does today for an agent-answered turn on an active
    conversation: lock, append both messages, save the counters."""
    with transaction.atomic():
        locked = conversation_lock(conversation_id=conversation.pk)
        assert locked is not None
        locked.turn_count += 1
        locked.agent_turns += 1
        conversation_append(
            conversation=locked,
            messages=[
                NewMessage(
                    role=Message.Role.CUSTOMER,
                    content=text,
                    intent=REPLY["intent"],
                    confidence=REPLY["confidence"],
                    author=customer,
                ),
                NewMessage(
                    role=Message.Role.AGENT,
                    content=REPLY["reply_text"],
                    intent=REPLY["intent"],
                    confidence=REPLY["confidence"],
                    metadata=dict(REPLY["metadata"]),
                ),
            ],
        )
        conversation_save(conversation=locked)


def fast_turn(conversation: Conversation, customer: User, text: str) -> Any:
    with transaction.atomic():
        return fastpath.turn_write(
            conversation_id=conversation.pk, customer_id=customer.pk, text=text, **REPLY
        )


def message_rows(conversation: Conversation) -> list[tuple[Any, ...]]:
    return [
        tuple(getattr(m, f) for f in MESSAGE_FIELDS)
        for m in Message.objects.filter(conversation=conversation).order_by("seq")
    ]


def conversation_state(conversation: Conversation) -> tuple[Any, ...]:
    conversation.refresh_from_db()
    return tuple(getattr(conversation, f) for f in CONVERSATION_FIELDS)


def seeded(customer: User, messages: int = 3, **fields: Any) -> Conversation:
    conversation = ConversationFactory(
        customer=customer, last_seq=messages, turn_count=2, agent_turns=2, **fields
    )
    for seq in range(1, messages + 1):
        MessageFactory(conversation=conversation, seq=seq, content=f"seeded message {seq}")
    return conversation


# --- turn_write --------------------------------------------------------------------------------


def test_same_rows_and_counters_as_the_general_path(customer: User) -> None:
    general, fast = seeded(customer), seeded(customer)
    before = timezone.now()

    for n in range(3):
        general_turn(general, customer, f"question {n}")
        written = fast_turn(fast, customer, f"question {n}")
        assert written is not None

    assert message_rows(fast) == message_rows(general)
    assert conversation_state(fast) == conversation_state(general)
    assert [r[0] for r in message_rows(fast)] == list(range(1, 10))
    # Timestamps: one instant per turn, shared by both messages and the conversation.
    last_two = list(Message.objects.filter(conversation=fast).order_by("-seq")[:2])
    assert last_two[0].created_at == last_two[1].created_at == fast.updated_at
    assert fast.updated_at >= before


def test_returns_what_was_written(customer: User) -> None:
    conversation = seeded(customer)
    written = fast_turn(conversation, customer, "hello")

    assert written is not None
    conversation.refresh_from_db()
    assert (written.turn_count, written.agent_turns, written.last_seq) == (
        conversation.turn_count,
        conversation.agent_turns,
        conversation.last_seq,
    )
    assert written.updated_at == conversation.updated_at
    stored = {m.pk: m for m in Message.objects.filter(conversation=conversation, seq__gt=3)}
    assert set(stored) == {written.customer_message.id, written.answer.id}
    for item in (written.customer_message, written.answer):
        # The push payload built from the returned value equals the one built from the row.
        assert message_payload(item) == message_payload(stored[item.id])
    assert (written.customer_message.seq, written.answer.seq) == (4, 5)
    assert stored[written.customer_message.id].author_id == customer.pk
    assert stored[written.answer.id].metadata == REPLY["metadata"]


def test_works_outside_an_atomic_block(customer: User) -> None:
    conversation = seeded(customer)
    written = fastpath.turn_write(
        conversation_id=conversation.pk, customer_id=customer.pk, text="hi", **REPLY
    )
    assert written is not None
    assert [r[0] for r in message_rows(conversation)] == [1, 2, 3, 4, 5]


def test_foreign_conversation_changes_nothing(customer: User, other_customer: User) -> None:
    theirs = seeded(other_customer)
    rows, state = message_rows(theirs), conversation_state(theirs)

    assert fast_turn(theirs, customer, "not mine") is None

    assert message_rows(theirs) == rows
    assert conversation_state(theirs) == state


@pytest.mark.parametrize("status", [Conversation.Status.ESCALATED, Conversation.Status.RESOLVED])
def test_escalated_or_resolved_conversation_is_left_to_the_general_path(
    customer: User, status: str
) -> None:
    conversation = seeded(customer, status=status)
    rows, state = message_rows(conversation), conversation_state(conversation)

    assert fast_turn(conversation, customer, "anyone there?") is None

    assert message_rows(conversation) == rows
    assert conversation_state(conversation) == state


@pytest.mark.parametrize("conversation_id", [0, -1, MAX_ID, MAX_ID + 1, 10**30])
def test_missing_or_impossible_id(customer: User, conversation_id: int) -> None:
    assert (
        fastpath.turn_write(
            conversation_id=conversation_id, customer_id=customer.pk, text="x", **REPLY
        )
        is None
    )
    assert Message.objects.count() == 0


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="row locks: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_gap_free_under_16_concurrent_writers(customer: User) -> None:
    writers = 16
    conversation = ConversationFactory(customer=customer)
    barrier = threading.Barrier(writers)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        try:
            barrier.wait()
            written = fastpath.turn_write(
                conversation_id=conversation.pk,
                customer_id=customer.pk,
                text=f"message number {n}",
                **REPLY,
            )
            with lock:
                results.append(written)
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert all(r is not None for r in results)
    assert len(results) == writers
    seqs = list(
        Message.objects.filter(conversation=conversation)
        .order_by("seq")
        .values_list("seq", flat=True)
    )
    assert seqs == list(range(1, 2 * writers + 1))  # gap-free, no duplicates
    # Each writer got a consecutive pair: its customer message, then its answer.
    assert sorted((r.customer_message.seq, r.answer.seq) for r in results) == [
        (2 * n + 1, 2 * n + 2) for n in range(writers)
    ]
    conversation.refresh_from_db()
    assert (conversation.last_seq, conversation.turn_count, conversation.agent_turns) == (
        2 * writers,
        writers,
        writers,
    )


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="one statement: PostgreSQL")
def test_one_statement_on_postgresql(customer: User) -> None:
    conversation = seeded(customer)
    with CaptureQueriesContext(connection) as captured:
        assert (
            fastpath.turn_write(
                conversation_id=conversation.pk, customer_id=customer.pk, text="hi", **REPLY
            )
            is not None
        )
    assert len(captured.captured_queries) == 1


# --- conversation_with_recent_messages ---------------------------------------------------------


def _as_rows(conversation: Any, messages: list[Any]) -> tuple[Any, ...]:
    if conversation is None:
        return None, []
    return (
        tuple(getattr(conversation, f.attname) for f in Conversation._meta.concrete_fields),
        [tuple(getattr(m, f.attname) for f in Message._meta.concrete_fields) for m in messages],
    )


@pytest.mark.parametrize("messages", [0, 1, 9, 10, 11, 25])
def test_recent_messages_equal_the_selector(customer: User, messages: int) -> None:
    from messaging import selectors

    conversation = ConversationFactory(customer=customer)
    for seq in range(1, messages + 1):
        MessageFactory(
            conversation=conversation,
            seq=seq,
            content=f"m{seq}",
            role=Message.Role.AGENT if seq % 2 == 0 else Message.Role.CUSTOMER,
            metadata={"n": seq} if seq % 2 == 0 else {},
            intent="account" if seq % 3 == 0 else None,
            confidence=0.5 if seq % 3 == 0 else None,
        )

    fast = fastpath.conversation_with_recent_messages(
        customer_id=customer.pk, conversation_id=conversation.pk
    )
    general = selectors.conversation_with_recent_messages(
        customer=customer, conversation_id=conversation.pk
    )

    assert _as_rows(*fast) == _as_rows(*general)
    assert [m.seq for m in fast[1]] == list(range(max(1, messages - 9), messages + 1))


def test_recent_messages_of_someone_elses_conversation(
    customer: User, other_customer: User
) -> None:
    theirs = seeded(other_customer)
    assert fastpath.conversation_with_recent_messages(
        customer_id=customer.pk, conversation_id=theirs.pk
    ) == (None, [])


@pytest.mark.parametrize("conversation_id", [0, -1, MAX_ID + 1])
def test_recent_messages_impossible_id(customer: User, conversation_id: int) -> None:
    assert fastpath.conversation_with_recent_messages(
        customer_id=customer.pk, conversation_id=conversation_id
    ) == (None, [])


def test_recent_messages_is_one_statement(customer: User) -> None:
    conversation = seeded(customer, messages=12)
    with CaptureQueriesContext(connection) as captured:
        fastpath.conversation_with_recent_messages(
            customer_id=customer.pk, conversation_id=conversation.pk
        )
    assert len(captured.captured_queries) == 1
