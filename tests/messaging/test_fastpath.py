"""messaging.fastpath's statements, on SQLite and on PostgreSQL: the writer's rows, seqs and
counters (gap-free under concurrent writers; ownership and status in the statement itself, so a
foreign conversation, or one no longer in the expected status, is left untouched), the agent's
context and the history page as the ORM reads the same rows, and the history's bytes as its
schema (HistoryOut) renders them. Both routes of a whole turn are compared in
test_turn_paths.py."""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from messaging import fastpath
from messaging.models import MAX_ID, Conversation, Message
from messaging.schemas import message_payload
from tests.factories import ConversationFactory, MessageFactory
from tests.races import failures, race

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


def test_rows_and_counters_of_three_turns(customer: User) -> None:
    conversation = seeded(customer)
    before = timezone.now()

    for n in range(3):
        assert fast_turn(conversation, customer, f"question {n}") is not None

    seeded_rows = [
        (seq, "customer", f"seeded message {seq}", None, None, None, {}) for seq in (1, 2, 3)
    ]
    turns = [
        row
        for n in range(3)
        for row in (
            (4 + 2 * n, "customer", f"question {n}", "account", 0.87, customer.pk, {}),
            (5 + 2 * n, "agent", REPLY["reply_text"], "account", 0.87, None, REPLY["metadata"]),
        )
    ]
    assert message_rows(conversation) == seeded_rows + turns
    # The counters: seeded at 5 customer turns, 2 answered by the agent; three turns more, each
    # answered; the newest seq.
    assert conversation_state(conversation) == ("active", 8, 5, 9, customer.pk)
    # Timestamps: one instant per turn, shared by both messages and the conversation.
    last_two = list(Message.objects.filter(conversation=conversation).order_by("-seq")[:2])
    assert last_two[0].created_at == last_two[1].created_at == conversation.updated_at
    assert conversation.updated_at >= before


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


def test_reply_without_intent_or_confidence_is_stored_as_nulls(customer: User) -> None:
    # Bound on the server (PostgreSQL), an untyped NULL would reach the INSERT as text.
    conversation = seeded(customer)
    reply = {**REPLY, "intent": None, "confidence": None, "metadata": {}}
    with transaction.atomic():
        written = fastpath.turn_write(
            conversation_id=conversation.pk, customer_id=customer.pk, text="hmm", **reply
        )

    assert written is not None
    stored = Message.objects.filter(conversation=conversation, seq__gt=3).order_by("seq")
    assert [(m.intent, m.confidence, m.metadata) for m in stored] == [(None, None, {})] * 2


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
def test_a_conversation_not_in_the_expected_status_is_left_alone(
    customer: User, status: str
) -> None:
    conversation = seeded(customer, status=status)
    rows, state = message_rows(conversation), conversation_state(conversation)

    assert fast_turn(conversation, customer, "anyone there?") is None

    assert message_rows(conversation) == rows
    assert conversation_state(conversation) == state


def test_a_resolved_conversation_goes_back_to_the_agent(customer: User) -> None:
    conversation = seeded(customer, status=Conversation.Status.RESOLVED)
    written = fastpath.turn_write(
        conversation_id=conversation.pk,
        customer_id=customer.pk,
        text="one more thing",
        expected_status=Conversation.Status.RESOLVED,
        **REPLY,
    )
    assert written is not None
    assert conversation_state(conversation) == ("active", 6, 3, 5, customer.pk)


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

    def writer(n: int) -> Any:
        return fastpath.turn_write(
            conversation_id=conversation.pk,
            customer_id=customer.pk,
            text=f"message number {n}",
            **REPLY,
        )

    results = race([partial(writer, n) for n in range(writers)])

    assert failures(results) == []
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


# --- agent_context -----------------------------------------------------------------------------


def _turn(seq: int) -> dict[str, Any]:
    """Message number `seq` of the context tests: every role the agent sees, text and empty
    content, intent and confidence null and set (a float whose repr is long, an int)."""
    return {
        "content": f"m{seq} Grüße 😀" if seq % 4 else "",
        "role": "agent" if seq % 2 == 0 else "customer",
        "intent": "account" if seq % 3 == 0 else None,
        "confidence": (0.1 + 0.2 if seq % 5 else 1.0) if seq % 3 == 0 else None,
    }


@pytest.mark.parametrize("status", ["active", "escalated", "resolved"])
@pytest.mark.parametrize("messages", [0, 1, 9, 10, 11, 25])
def test_agent_context_is_the_last_ten_messages(customer: User, messages: int, status: str) -> None:
    from messaging.agent import TurnSnapshot

    conversation = ConversationFactory(customer=customer, status=status, agent_turns=4)
    for seq in range(1, messages + 1):
        MessageFactory(
            conversation=conversation,
            seq=seq,
            metadata={"n": seq} if seq % 2 == 0 else {},
            **_turn(seq),
        )

    found = fastpath.agent_context(customer_id=customer.pk, conversation_id=conversation.pk)

    assert found == fastpath.AgentContext(
        conversation_id=conversation.pk,
        status=status,
        agent_turns=4,
        recent_messages=tuple(
            TurnSnapshot(**_turn(seq)) for seq in range(max(1, messages - 9), messages + 1)
        ),
    )
    # The values' own types, as the rows hold them (no converter on either database).
    assert [
        tuple(type(getattr(m, name)) for name in ("role", "content", "intent", "confidence"))
        for m in found.recent_messages
    ] == [
        (str, str, type(_turn(seq)["intent"]), type(_turn(seq)["confidence"]))
        for seq in range(max(1, messages - 9), messages + 1)
    ]


def test_agent_context_of_someone_elses_conversation(customer: User, other_customer: User) -> None:
    theirs = seeded(other_customer)
    assert fastpath.agent_context(customer_id=customer.pk, conversation_id=theirs.pk) is None
    assert fastpath.agent_context(customer_id=other_customer.pk, conversation_id=theirs.pk)


@pytest.mark.parametrize("conversation_id", [0, -1, MAX_ID + 1])
def test_agent_context_impossible_id(customer: User, conversation_id: int) -> None:
    with CaptureQueriesContext(connection) as captured:
        found = fastpath.agent_context(customer_id=customer.pk, conversation_id=conversation_id)
    assert found is None
    assert captured.captured_queries == []


def test_agent_context_is_one_statement(customer: User) -> None:
    conversation = seeded(customer, messages=12)
    with CaptureQueriesContext(connection) as captured:
        fastpath.agent_context(customer_id=customer.pk, conversation_id=conversation.pk)
    assert len(captured.captured_queries) == 1


# --- history_page: GET /conversations/{id}/history -----------------------------------------------


def _page(query: str, total: int) -> tuple[list[int], bool]:
    """The seqs a page of a conversation with messages 1..total holds, and has_more, by the
    route's rule (docs/api.md): after_seq → the first `limit` after it; otherwise the latest
    `limit` before before_seq (or of all)."""
    params = dict(parse_qsl(query))
    limit = int(params.get("limit", 100))
    seqs = [seq for seq in range(1, total + 1) if seq > int(params.get("after_seq", 0))]
    if "before_seq" in params:
        seqs = [seq for seq in seqs if seq < int(params["before_seq"])]
    if "after_seq" in params:
        return seqs[:limit], len(seqs) > limit
    return seqs[-limit:], len(seqs) > limit


def _validated_body(conversation_id: int, seqs: list[int], has_more: bool) -> bytes:
    """The page as its schema gives it from the ORM's model instances: HistoryOut validated
    (what ninja does with a returned object) and rendered by the API's renderer."""
    from types import SimpleNamespace

    from config.api import api
    from messaging.schemas import HistoryOut

    messages = list(
        Message.objects.filter(conversation_id=conversation_id, seq__in=seqs).order_by("seq")
    )
    page = SimpleNamespace(conversation_id=conversation_id, messages=messages, has_more=has_more)
    validated = HistoryOut.from_orm(page).model_dump()
    return api.renderer.render(None, validated, response_status=200).encode()  # type: ignore[arg-type]


def _history(client: Any, conversation_id: int, query: str) -> Any:
    response = client.get(f"/api/v1/conversations/{conversation_id}/history?{query}")
    assert response["Content-Type"] == "application/json; charset=utf-8"
    return response


@pytest.fixture
def every_kind_of_message(customer: User, operator: User) -> Conversation:
    """Every role; operator messages with and without (and with a non-text) author_name;
    intent and confidence null and set, with floats whose repr is not short; non-ASCII, emoji,
    escapes; created_at with and without microseconds."""
    from datetime import UTC, datetime

    conversation = ConversationFactory(customer=customer)
    at = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {"role": "customer", "content": "Grüße — naïve façade, 日本語, Ελληνικά"},
        {
            "role": "agent",
            "content": "Emoji 😀👍🏽 and a family 👨‍👩‍👧 and a flag 🇺🇦",
            "intent": "billing",
            "confidence": 0.87,
            "metadata": {"source": "rules", "author_name": "not an operator"},
        },
        {
            "role": "customer",
            "content": 'quotes " \\ back\\slash\nnew line\ttab </script> \u2028 \u00a0 \x7f',
            "created_at": at.replace(microsecond=0),
        },
        {
            "role": "agent",
            "content": "float repr",
            "intent": "account",
            "confidence": 0.1 + 0.2,
            "metadata": {"fallback": True},
        },
        {"role": "system", "content": "An operator will be with you shortly."},
        {
            "role": "operator",
            "content": "Hi, Zoë here 🎧",
            "author": operator,
            "metadata": {"author_name": "Zoë 🎧 O'Brien"},
        },
        {"role": "operator", "content": "no name stored", "author": operator, "metadata": {}},
        {"role": "operator", "content": "a name that is not text", "metadata": {"author_name": 7}},
        {"role": "operator", "content": "null name", "metadata": {"author_name": None}},
        {"role": "agent", "content": "certain", "intent": "greeting", "confidence": 1.0},
        {"role": "agent", "content": "unsure", "intent": "other", "confidence": 0.0},
        {"role": "agent", "content": "tiny", "intent": "other", "confidence": 1e-07},
        {"role": "customer", "content": ""},
    ]
    for n, row in enumerate(rows):
        row.setdefault("created_at", at.replace(microsecond=(n * 1001) % 1_000_000))
        MessageFactory(conversation=conversation, **row)
    return conversation


HISTORY_QUERIES = [
    "",
    "limit=1",
    "limit=4",
    "limit=13",
    "limit=1000",
    "after_seq=0",
    "after_seq=0&limit=5",
    "after_seq=5&limit=3",
    "after_seq=12",
    "after_seq=13",
    "after_seq=500",
    "before_seq=1",
    "before_seq=2",
    "before_seq=7&limit=3",
    "before_seq=14&limit=13",
    "before_seq=9999",
    "after_seq=2&before_seq=9",
    "after_seq=2&before_seq=9&limit=3",
    "after_seq=5&before_seq=6",
    "after_seq=9&before_seq=3",
    f"after_seq={MAX_ID}",
    f"before_seq={MAX_ID}&limit=2",
    f"after_seq=0&before_seq={MAX_ID}&limit=1000",
]


@pytest.mark.parametrize("query", HISTORY_QUERIES)
@pytest.mark.parametrize("reader", ["customer", "operator"])
def test_history_bytes_are_what_historyout_gives(
    reader: str,
    query: str,
    customer_client: Any,
    operator_client: Any,
    every_kind_of_message: Conversation,
) -> None:
    client = customer_client if reader == "customer" else operator_client
    conversation_id = every_kind_of_message.pk
    seqs, has_more = _page(query, 13)
    response = _history(client, conversation_id, query)
    assert response.status_code == 200
    assert response.content == _validated_body(conversation_id, seqs, has_more)
    assert [m["seq"] for m in response.json()["messages"]] == seqs


def test_history_items_as_clients_see_them(
    customer_client: Any, every_kind_of_message: Conversation
) -> None:
    response = _history(customer_client, every_kind_of_message.pk, "after_seq=1&limit=9")
    body = response.json()
    items = body["messages"]
    assert [m["seq"] for m in items] == list(range(2, 11))
    assert body["has_more"] is True
    assert body["conversation_id"] == every_kind_of_message.pk
    assert items[0]["author_name"] is None  # stored on an agent message: not sent
    assert items[0]["created_at"] == "2026-03-04T05:06:07.001Z"
    assert items[1]["created_at"] == "2026-03-04T05:06:07Z"
    assert items[2]["confidence"] == 0.30000000000000004
    assert [m["author_name"] for m in items if m["role"] == "operator"] == [
        "Zoë 🎧 O'Brien",
        None,
        None,
        None,
    ]
    assert items[3]["intent"] is None
    assert items[3]["confidence"] is None
    assert "\\ud83c\\udfa7" in response.text


def test_history_items_are_the_sockets_replay(
    customer: User, every_kind_of_message: Conversation
) -> None:
    """The history page (fixed statement, rows) and the socket's replay (ORM instances,
    messaging.consumers) send every message alike, created_at as the encoder writes it."""
    from messaging.consumers import _messages_after_payloads

    principal = _principal(customer)
    page = fastpath.history_page(
        principal=principal, conversation_id=every_kind_of_message.pk, limit=50
    )
    assert page is not None
    replay = _messages_after_payloads(
        conversation_id=every_kind_of_message.pk, after_seq=0, limit=50
    )
    assert [message_payload(m) for m in page.messages] == replay
    assert len(replay) == 13


def test_empty_conversation_is_an_empty_page_not_404(
    customer: User, customer_client: Any, operator_client: Any
) -> None:
    empty = ConversationFactory(customer=customer)
    for client in (customer_client, operator_client):
        for query in ("", "after_seq=0", "before_seq=5", "after_seq=3&before_seq=2"):
            response = _history(client, empty.pk, query)
            assert response.content == _validated_body(empty.pk, [], False)
            assert response.json() == {
                "conversation_id": empty.pk,
                "messages": [],
                "has_more": False,
            }


@pytest.mark.parametrize("target", ["foreign", "missing", "zero", "huge"])
def test_unreadable_history_is_the_same_404(
    target: str,
    other_customer: User,
    customer_client: Any,
    operator: User,
    client_for: Any,
) -> None:
    theirs = seeded(other_customer)
    conversation_id = {
        "foreign": theirs.pk,
        "missing": theirs.pk + 1000,
        "zero": 0,
        "huge": 2**70,
    }[target]
    # An operator without escalations:manage reads only their own, like a customer.
    unscoped_operator = client_for(operator, {"conversations:read"})
    for client in (customer_client, unscoped_operator):
        response = _history(client, conversation_id, "limit=5")
        assert response.status_code == 404
        assert response.json() == {"detail": "Conversation not found"}


def _principal(user: User, scopes: set[str] | None = None) -> Any:
    from accounts.auth import Principal
    from accounts.scopes import CONVERSATIONS_READ, ESCALATIONS_MANAGE

    granted = scopes if scopes is not None else {CONVERSATIONS_READ, ESCALATIONS_MANAGE}
    return Principal(user=user, scopes=frozenset(granted), method="jwt")


@pytest.mark.parametrize("limit", [1, 3, 12, 13])
def test_history_page_pages_by_the_rule(customer: User, limit: int) -> None:
    conversation = seeded(customer, messages=12)
    principal = _principal(customer)
    for after_seq in (None, 0, 1, 5, 11, 12):
        for before_seq in (None, 1, 2, 6, 12, 13):
            page = fastpath.history_page(
                principal=principal,
                conversation_id=conversation.pk,
                limit=limit,
                after_seq=after_seq,
                before_seq=before_seq,
            )
            query = "&".join(
                f"{name}={value}"
                for name, value in (
                    ("limit", limit),
                    ("after_seq", after_seq),
                    ("before_seq", before_seq),
                )
                if value is not None
            )
            assert page is not None
            assert ([m.seq for m in page.messages], page.has_more) == _page(query, 12), query


def test_history_page_ownership(customer: User, other_customer: User, operator: User) -> None:
    from accounts.scopes import CONVERSATIONS_READ

    theirs = seeded(other_customer, messages=2)
    read = {"conversation_id": theirs.pk, "limit": 10}
    assert fastpath.history_page(principal=_principal(customer), **read) is None
    unscoped = _principal(operator, {CONVERSATIONS_READ})
    assert fastpath.history_page(principal=unscoped, **read) is None
    page = fastpath.history_page(principal=_principal(operator), **read)
    assert page is not None
    assert [m.seq for m in page.messages] == [1, 2]
    own = fastpath.history_page(principal=_principal(other_customer), **read)
    assert own == page


@pytest.mark.parametrize("conversation_id", [0, -1, MAX_ID + 1])
def test_history_page_impossible_id_runs_no_query(customer: User, conversation_id: int) -> None:
    with CaptureQueriesContext(connection) as captured:
        page = fastpath.history_page(
            principal=_principal(customer), conversation_id=conversation_id, limit=5
        )
    assert page is None
    assert captured.captured_queries == []


# The history request's round trips: the auth lookup (accounts.fastauth) and the page with its
# ownership rule (fastpath.history_page); no transaction. Before: auth, the conversation, the
# messages.
HISTORY_STATEMENTS = 2


@pytest.mark.parametrize("case", ["own", "operator", "empty", "foreign", "after", "before"])
def test_history_request_round_trips(
    case: str,
    customer: User,
    other_customer: User,
    customer_client: Any,
    operator_client: Any,
) -> None:
    mine = seeded(customer, messages=6)
    conversation, client, query, status = {
        "own": (mine, customer_client, "limit=50", 200),
        "operator": (seeded(other_customer), operator_client, "", 200),
        "empty": (ConversationFactory(customer=customer), customer_client, "", 200),
        "foreign": (seeded(other_customer), customer_client, "", 404),
        "after": (mine, customer_client, "after_seq=2&limit=2", 200),
        "before": (mine, customer_client, "before_seq=4&limit=2", 200),
    }[case]
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/api/v1/conversations/{conversation.pk}/history?{query}")
    assert response.status_code == status
    statements = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    # An operator reading someone else's conversation also costs the Operators-group lookup
    # (accounts.operators); a customer's read never does.
    expected = HISTORY_STATEMENTS + (1 if case == "operator" else 0)
    assert statements == ["SELECT"] * expected


def test_history_round_trips_do_not_grow_with_the_conversation(
    customer: User, customer_client: Any, django_assert_num_queries: Any
) -> None:
    conversation = ConversationFactory(customer=customer)
    Message.objects.bulk_create(
        Message(conversation=conversation, seq=seq, role="customer", content=f"m{seq}")
        for seq in range(1, 2001)
    )
    Conversation.objects.filter(pk=conversation.pk).update(last_seq=2000)
    for query in ("limit=50", "after_seq=1000&limit=50", "before_seq=1500&limit=50"):
        with django_assert_num_queries(HISTORY_STATEMENTS):
            response = customer_client.get(
                f"/api/v1/conversations/{conversation.pk}/history?{query}"
            )
        assert response.status_code == 200
        assert len(response.json()["messages"]) == 50


def test_the_row_description_is_checked_against_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A column added to Message (or a NewMessage field) that the writer does not know breaks
    the writer loudly, not its statement."""
    from django.core.exceptions import ImproperlyConfigured

    assert fastpath._message_row.__wrapped__().created_at.name == "created_at"
    monkeypatch.setattr(fastpath, "_NEW_MESSAGE_FIELDS", ("role", "content", "metadata"))
    with pytest.raises(ImproperlyConfigured, match="does not describe Message's columns"):
        fastpath._message_row.__wrapped__()
