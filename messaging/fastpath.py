"""The hot path of `POST /messages/process` as plain SQL, for the common case only.

Under load the ORM's query construction and compilation was the largest share of a message's
CPU (docs/benchmarks.md: "Where the CPU goes"). The statements that run on every message are
here as fixed SQL, built once per process, with every rule the ORM path applies kept inside the
statement itself:

- `turn_write`: an agent-answered turn on an *active* conversation the caller owns. On
  PostgreSQL one statement: an `UPDATE … RETURNING` of the conversation (which takes the row
  lock, advances `last_seq` by two and the turn counters by one, and checks id, owner and status
  in its WHERE) feeds the `INSERT` of both messages with the two new seqs, and the same
  statement writes their `message.created` domain events through the sinks that can
  (messaging.events.domain_event_inserts: the webhook outbox), so outside an atomic block it
  commits on its own — no BEGIN, no COMMIT. Concurrent writers queue on the row lock; each
  re-reads the committed row, so seqs stay gap-free and unique. On SQLite (RETURNING needs
  3.35) the same two statements run one after the other inside the IMMEDIATE transaction that
  already holds the database's write lock, and the sinks are called in it.
- `agent_context`: the agent's context (the customer's own conversation's status and counter,
  and its last messages) in one statement, without model instances. (The token's user lookup,
  the third per-request statement, lives in accounts.fastauth: accounts may not import
  messaging.)
- `history_page`: `GET /conversations/{id}/history` — the reader's right to the conversation
  and one page of its messages in one statement, as client items (no model instances), so the
  endpoint renders them without per-message schemas.

Anything else returns None and leaves the rows untouched, so the caller falls back to the
general ORM path (messaging.services), which owns the rare branches: a missing or foreign
conversation (404), an escalated one (system acknowledgement), a resolved one (back to active,
with a status push), a new conversation, and an agent that asks for a human.

This module only reads and writes rows (and the turn's events). Pushing the new messages after
commit, idempotency and rate limits stay with the caller, which pushes `TurnWritten.payloads`
(`messaging.schemas.message_payload` of both messages, as the general path builds them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction
from django.utils import timezone

from core.fixedsql import column, converters, field, prepared_cursor, table
from messaging.agent import TurnSnapshot
from messaging.events import MESSAGE_CREATED, domain_event_inserts, domain_events_record
from messaging.models import Conversation, Message, is_possible_id
from messaging.permissions import can_read_any_conversation
from messaging.schemas import message_event_data, message_item, message_payload

if TYPE_CHECKING:
    from accounts.auth import Principal


@dataclass(frozen=True)
class WrittenMessage:
    id: int
    seq: int
    role: str
    content: str
    intent: str | None
    confidence: float | None
    created_at: datetime
    metadata: dict[str, Any]


@dataclass(frozen=True)
class TurnWritten:
    """What the general path would hold after `conversation_save`: the conversation's new
    counters and both messages."""

    conversation_id: int
    turn_count: int
    agent_turns: int
    last_seq: int
    updated_at: datetime
    customer_message: WrittenMessage
    answer: WrittenMessage
    # Both messages as clients see them (`message_payload`, key for key): the push payloads.
    payloads: tuple[dict[str, Any], dict[str, Any]]


_MESSAGE_COLUMNS = (
    "conversation",
    "seq",
    "role",
    "content",
    "intent",
    "confidence",
    "author",
    "metadata",
    "created_at",
)


_TURN_SQL: dict[tuple[str, tuple[str, ...] | None], tuple[str, ...]] = {}


def _turn_sql(connection: Any, event_inserts: tuple[str, ...] | None) -> tuple[str, ...]:
    """The statements of `turn_write` for the connection's database vendor and the event sinks'
    inserts, built once (names from the models, so a renamed column breaks loudly here rather
    than silently in production)."""
    key = (connection.vendor, event_inserts)
    statements = _TURN_SQL.get(key)
    if statements is None:
        statements = _TURN_SQL[key] = _build_turn_sql(connection, event_inserts)
    return statements


def _build_turn_sql(connection: Any, event_inserts: tuple[str, ...] | None) -> tuple[str, ...]:
    conv = table(Conversation)
    c = {
        name: column(Conversation, name)
        for name in (
            "id",
            "customer",
            "status",
            "turn_count",
            "agent_turns",
            "last_seq",
            "updated_at",
        )
    }
    # Names from the models, every value bound as a parameter.
    update = (
        f"UPDATE {conv} SET {c['last_seq']} = {c['last_seq']} + 2, "  # noqa: S608
        f"{c['turn_count']} = {c['turn_count']} + 1, "
        f"{c['agent_turns']} = {c['agent_turns']} + 1, {c['updated_at']} = %s "
        f"WHERE {c['id']} = %s AND {c['customer']} = %s AND {c['status']} = %s "
        f"RETURNING {c['id']}, {c['last_seq']}, {c['turn_count']}, {c['agent_turns']}"
    )
    message = table(Message)
    columns = ", ".join(column(Message, name) for name in _MESSAGE_COLUMNS)
    if connection.vendor == "postgresql":
        # Each value cast to its column's type: bound on the server, a NULL (no intent or
        # confidence) would otherwise reach the INSERT through the UNION as text.
        values = ", ".join(
            f"%s::{field(Message, name).cast_db_type(connection)}" for name in _MESSAGE_COLUMNS[2:]
        )
        events = ""
        if event_inserts:
            # The turn's message.created events (messaging.events.EVENT_ROW_COLUMNS): each
            # payload is the message's JSON without the two values only the INSERT knows,
            # which jsonb `||` adds (jsonb keeps no key order, so the stored value equals the
            # payload `domain_events_record` would have been given). Then every sink's INSERT.
            payload = (
                "(CASE WHEN m.seq = c.{last} THEN %s ELSE %s END)::jsonb "
                "|| jsonb_build_object('id', m.id, 'seq', m.seq)"
            ).format(last=c["last_seq"])
            events = (
                f", e AS (SELECT %s::text AS type, {payload} AS payload, "  # noqa: S608
                f"%s::bigint AS customer_id, %s::timestamptz AS created_at "
                f"FROM m CROSS JOIN c)"
            ) + "".join(f", o{n} AS ({insert})" for n, insert in enumerate(event_inserts))
        return (
            f"WITH c AS ({update}), m AS ("  # noqa: S608 - names from the models, values bound
            f"INSERT INTO {message} ({columns}) "
            f"SELECT c.{c['id']}, c.{c['last_seq']} - 1, {values} FROM c "
            f"UNION ALL "
            f"SELECT c.{c['id']}, c.{c['last_seq']}, {values} FROM c "
            f"RETURNING id, seq){events} "
            f"SELECT m.id, m.seq, c.{c['last_seq']}, c.{c['turn_count']}, c.{c['agent_turns']} "
            f"FROM m CROSS JOIN c ORDER BY m.seq",
        )
    return (
        update,
        f"INSERT INTO {message} ({columns}) VALUES "  # noqa: S608 - names from the models
        f"(%s, %s, %s, %s, %s, %s, %s, %s, %s), (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        f"RETURNING id, seq",
    )


def _prep(model: Any, name: str, value: Any, connection: Any) -> Any:
    """A value as the ORM would send it (datetime adaptation, JSON encoding)."""
    return field(model, name).get_db_prep_save(value, connection)


def turn_write(
    *,
    conversation_id: int,
    customer_id: int,
    text: str,
    reply_text: str,
    intent: str | None,
    confidence: float | None,
    metadata: dict[str, Any],
    now: datetime | None = None,
    using: str = "default",
) -> TurnWritten | None:
    """Append the customer's message and the agent's answer to an active conversation owned by
    `customer_id`, advancing `last_seq` by two and `turn_count`/`agent_turns` by one, and record
    both messages' `message.created` domain events with them (as conversation_append does).

    None — and no row changed, no event — when the conversation is missing, someone else's,
    escalated or resolved: the general path decides what those mean. Works inside the caller's
    atomic block (then it commits with it) or outside one. On PostgreSQL, when every event sink
    can write from a statement (messaging.events.domain_event_inserts), the rows and the events
    are one statement: outside an atomic block it is its own transaction, one round trip in all.
    Otherwise the write and `domain_events_record` share one transaction."""
    if not is_possible_id(conversation_id):
        return None
    now = now or timezone.now()
    connection = connections[using]

    def pending(role: str, content: str, metadata: dict[str, Any]) -> WrittenMessage:
        # Placeholders for id and seq, which only the INSERT gives.
        return WrittenMessage(
            id=0,
            seq=0,
            role=role,
            content=content,
            intent=intent,
            confidence=confidence,
            created_at=now,
            metadata=metadata,
        )

    customer_message = pending(Message.Role.CUSTOMER.value, text, {})
    answer = pending(Message.Role.AGENT.value, reply_text, dict(metadata))
    # Built once, with the placeholders; the real id and seq replace them after the write.
    payloads = (message_payload(customer_message), message_payload(answer))
    event_inserts = domain_event_inserts("e") if connection.vendor == "postgresql" else None
    if event_inserts is not None:
        events: list[Any] = []
        if event_inserts:  # else nobody listens
            # The statement adds the real id and seq to each payload (jsonb `||`); the answer's
            # first: its seq is the new last_seq (the statement's CASE).
            templates = [
                json.dumps(
                    message_event_data(
                        {k: v for k, v in payload.items() if k not in ("id", "seq")},
                        conversation_id=conversation_id,
                        customer_id=customer_id,
                    )
                )
                for payload in reversed(payloads)
            ]
            created_at = _prep(Message, "created_at", now, connection)
            events = [MESSAGE_CREATED, *templates, customer_id, created_at]
        rows = _write_rows(
            connection,
            using,
            event_inserts,
            conversation_id,
            customer_id,
            customer_message,
            answer,
            events,
        )
        return _written(conversation_id, rows, customer_message, answer, payloads)
    with transaction.atomic(using=using, savepoint=False):
        rows = _write_rows(
            connection, using, None, conversation_id, customer_id, customer_message, answer, []
        )
        written = _written(conversation_id, rows, customer_message, answer, payloads)
        if written is not None:
            domain_events_record(
                [
                    (
                        MESSAGE_CREATED,
                        message_event_data(
                            payload, conversation_id=conversation_id, customer_id=customer_id
                        ),
                    )
                    for payload in written.payloads
                ]
            )
    return written


_Rows = tuple[tuple[int, int], tuple[int, int], tuple[int, int, int]] | None


def _write_rows(
    connection: Any,
    using: str,
    event_inserts: tuple[str, ...] | None,
    conversation_id: int,
    customer_id: int,
    customer_message: WrittenMessage,
    answer: WrittenMessage,
    events: list[Any],
) -> _Rows:
    """The turn's statement(s): ((customer message id, seq), (answer id, seq), (last_seq,
    turn_count, agent_turns)), or None when the conversation did not qualify."""
    statements = _turn_sql(connection, event_inserts)
    at = _prep(Conversation, "updated_at", customer_message.created_at, connection)
    customer_row = [
        customer_message.role,
        customer_message.content,
        customer_message.intent,
        customer_message.confidence,
        customer_id,
        _prep(Message, "metadata", customer_message.metadata, connection),
        at,
    ]
    answer_row = [
        answer.role,
        answer.content,
        answer.intent,
        answer.confidence,
        None,
        _prep(Message, "metadata", answer.metadata, connection),
        at,
    ]
    head = [at, conversation_id, customer_id, Conversation.Status.ACTIVE.value]
    if connection.vendor == "postgresql":
        with prepared_cursor(using) as cursor:
            cursor.execute(statements[0], [*head, *customer_row, *answer_row, *events])
            rows = cursor.fetchall()
        if not rows:
            return None
        (first_id, first_seq, last_seq, turns, agent_turns), (second_id, second_seq, *_) = rows
        return (first_id, first_seq), (second_id, second_seq), (last_seq, turns, agent_turns)
    # SQLite: two statements, inside the caller's transaction (turn_write's atomic block:
    # IMMEDIATE, so it already holds the database's write lock).
    with prepared_cursor(using) as cursor:
        cursor.execute(statements[0], head)
        conversation = cursor.fetchone()
        if conversation is None:
            return None
        _, last_seq, turns, agent_turns = conversation
        cursor.execute(
            statements[1],
            [conversation_id, last_seq - 1, *customer_row, conversation_id, last_seq, *answer_row],
        )
        first, second = sorted(cursor.fetchall(), key=lambda row: row[1])
    return tuple(first), tuple(second), (last_seq, turns, agent_turns)


def _written(
    conversation_id: int,
    rows: _Rows,
    customer_message: WrittenMessage,
    answer: WrittenMessage,
    payloads: tuple[dict[str, Any], dict[str, Any]],
) -> TurnWritten | None:
    if rows is None:
        return None
    (first_id, first_seq), (second_id, second_seq), (last_seq, turns, agent_turns) = rows
    # `|` keeps the keys where they are: id and seq stay first, as message_payload puts them.
    return TurnWritten(
        conversation_id=conversation_id,
        turn_count=turns,
        agent_turns=agent_turns,
        last_seq=last_seq,
        updated_at=customer_message.created_at,
        customer_message=replace(customer_message, id=first_id, seq=first_seq),
        answer=replace(answer, id=second_id, seq=second_seq),
        payloads=(
            payloads[0] | {"id": first_id, "seq": first_seq},
            payloads[1] | {"id": second_id, "seq": second_seq},
        ),
    )


# --- the agent's context -------------------------------------------------------------------------

RECENT_MESSAGES = 10  # as messaging.selectors.RECENT_MESSAGES_FOR_AGENT


@dataclass(frozen=True)
class AgentContext:
    """What a turn reads of the customer's conversation before it takes any lock: the status
    that picks the path, and what the agent may see (messaging.agent.ConversationSnapshot:
    the agent turns so far and the last messages, oldest first). Nothing else of the row is
    read before the lock: the general path locks and re-reads it (services.conversation_lock)."""

    conversation_id: int
    status: str
    agent_turns: int
    recent_messages: tuple[TurnSnapshot, ...]


_CONTEXT_CONVERSATION_COLUMNS = ("id", "status", "agent_turns")
_CONTEXT_MESSAGE_COLUMNS = ("role", "content", "intent", "confidence")


@cache
def _context_sql() -> str:
    columns = ", ".join(
        [f"c.{column(Conversation, name)}" for name in _CONTEXT_CONVERSATION_COLUMNS]
        + [f"m.{column(Message, name)}" for name in _CONTEXT_MESSAGE_COLUMNS]
    )
    last_seq = column(Conversation, "last_seq")
    # seq runs 1..last_seq without gaps (written only under the row lock), so "seq above
    # last_seq - N" is the last N messages, read through the (conversation, seq) unique index;
    # the LEFT JOIN keeps a conversation that has no messages yet.
    return (
        f"SELECT {columns} FROM {table(Conversation)} c "  # noqa: S608 - model names
        f"LEFT JOIN {table(Message)} m ON m.{column(Message, 'conversation')} = c.id "
        f"AND m.{column(Message, 'seq')} > c.{last_seq} - {RECENT_MESSAGES} "
        f"WHERE c.id = %s AND c.{column(Conversation, 'customer')} = %s "
        f"ORDER BY m.{column(Message, 'seq')}"
    )


def agent_context(
    *, customer_id: int, conversation_id: int, using: str = "default"
) -> AgentContext | None:
    """What `messaging.selectors.conversation_with_recent_messages` gives the turn, in one
    fixed statement and without model instances: the customer's own conversation's id, status
    and agent turns, and its last messages as the agent sees them; None when the conversation
    is missing or someone else's.

    The values are the rows' own: none of these columns has a from-database converter on
    SQLite or PostgreSQL (tests/messaging/test_fastpath.py compares the result with the
    selector's model instances on both)."""
    if not is_possible_id(conversation_id):
        return None
    with prepared_cursor(using) as cursor:
        cursor.execute(_context_sql(), [conversation_id, customer_id])
        rows = cursor.fetchall()
    if not rows:
        return None
    found_id, status, agent_turns = rows[0][:3]
    return AgentContext(
        conversation_id=found_id,
        status=status,
        agent_turns=agent_turns,
        recent_messages=tuple(
            TurnSnapshot(role=role, content=content, intent=intent, confidence=confidence)
            for _id, _status, _turns, role, content, intent, confidence in rows
            if role is not None  # the one row of a conversation without messages
        ),
    )


# --- a conversation's history --------------------------------------------------------------------

_HISTORY_MESSAGE_COLUMNS = ("id", "seq", "role", "content", "intent", "confidence", "created_at")


@cache
def _history_sql(*, after: bool, before: bool, any_reader: bool) -> str:
    """The statement of `history_page` for one shape of request (eight in all, each built once
    per process from the models' names; every value is bound).

    The page is a derived table — the messages of the conversation with the seq bounds, in the
    paging direction, LIMIT limit + 1 — LEFT JOINed to the conversation row that carries the
    ownership rule, so a readable conversation always yields at least one row (all message
    columns NULL when the page is empty) and a missing or foreign one yields none.

    Why not join the conversation to the messages and ORDER BY … LIMIT the join: PostgreSQL
    cannot carry the index's order through the nested loop, so it reads and top-N-sorts every
    message of the conversation (EXPLAIN ANALYZE, 50 000 messages: Limit ← Sort ← Nested Loop
    Left Join ← Seq Scan on messaging_message, 19 ms). Here the LIMIT sits directly on the
    (conversation, seq) unique index (PostgreSQL 50 000 messages, 20 000 conversations):

        Sort (51 rows)
          -> Nested Loop Left Join
               -> Index Scan using messaging_conversation_pkey on messaging_conversation c
                    Index Cond: (id = …)  Filter: (customer_id = …)
               -> Limit
                    -> Index Scan Backward using message_seq_unique on messaging_message
                         Index Cond: ((conversation_id = …) AND (seq < …))

    0.06-0.11 ms for a page of 50 whatever the conversation's length (paging forward: a forward
    Index Scan, `seq > …`); the inner side never runs when the conversation row is filtered
    out. No single-column conversation_id index exists to tempt the planner into reading a
    short conversation whole and sorting it (messaging migration 0003 dropped it). SQLite
    (EXPLAIN QUERY PLAN): `MATERIALIZE m` ← `SEARCH messaging_message USING INDEX
    sqlite_autoindex_messaging_message_1 (conversation_id=? AND seq<?)` (at most limit + 1
    rows), then the conversation by its primary key (or the covering customer index), and a
    temp b-tree to sort those rows."""
    message = {name: column(Message, name) for name in _HISTORY_MESSAGE_COLUMNS}
    conversation_fk = column(Message, "conversation")
    metadata = column(Message, "metadata")
    seq = message["seq"]
    bounds = (f" AND {seq} > %s" if after else "") + (f" AND {seq} < %s" if before else "")
    columns = ", ".join(message.values())
    owner = "" if any_reader else f" AND c.{column(Conversation, 'customer')} = %s"
    # Only an operator message's metadata is read (its author_name): the others' is not sent.
    return (
        f"SELECT {', '.join(f'm.{name}' for name in message.values())}, m.md "  # noqa: S608
        f"FROM {table(Conversation)} c LEFT JOIN ("
        f"SELECT {columns}, CASE WHEN {message['role']} = %s THEN {metadata} END AS md "
        f"FROM {table(Message)} WHERE {conversation_fk} = %s{bounds} "
        f"ORDER BY {seq} {'ASC' if after else 'DESC'} LIMIT %s"
        f") m ON TRUE WHERE c.{Conversation._meta.pk.column} = %s{owner} "
        f"ORDER BY m.{seq}"
    )


def history_page(
    *,
    principal: Principal,
    conversation_id: int,
    limit: int,
    after_seq: int | None = None,
    before_seq: int | None = None,
    using: str = "default",
) -> tuple[list[dict[str, Any]], bool] | None:
    """`selectors.conversation_get_for_reader` and `selectors.message_history` in one fixed
    statement: the page's messages as client items, oldest first, and whether more exist in the
    direction being paged; None when the conversation is missing or not the caller's to read
    (their own, or any for `can_read_any_conversation`).

    Each item is `messaging.schemas.message_item` (what `message_payload` builds, key for key,
    except that `created_at` is still the datetime: the caller encodes the body with ninja's
    encoder, which formats it exactly as a response would).

    after_seq → the first `limit` after it (has_more: newer remain); otherwise the latest `limit`
    before `before_seq` (or of all) (has_more: older remain)."""
    if not is_possible_id(conversation_id):
        return None
    any_reader = can_read_any_conversation(principal)
    forward = after_seq is not None
    sql = _history_sql(after=forward, before=before_seq is not None, any_reader=any_reader)
    params: list[Any] = [Message.Role.OPERATOR.value, conversation_id]
    if after_seq is not None:
        params.append(after_seq)
    if before_seq is not None:
        params.append(before_seq)
    params += [limit + 1, conversation_id]
    if not any_reader:
        params.append(principal.user_id)
    connection = connections[using]
    with prepared_cursor(using) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return None
    if rows[0][0] is None:  # a readable conversation with nothing in this page
        return [], False
    has_more = len(rows) > limit
    if has_more:
        # Ascending either way: paging forward drops the newest extra, backward the oldest.
        rows = rows[:limit] if forward else rows[len(rows) - limit :]
    # The ORM's from-database converters (accounts.fastauth's instance_from_row uses the same).
    by_name = {name: (found, col) for _, name, found, col in converters(Message, connection)}
    created_converters, created_col = by_name.get("created_at", ([], None))
    metadata_converters, metadata_col = by_name.get("metadata", ([], None))
    items = []
    for message_id, seq, role, content, intent, confidence, created_at, metadata in rows:
        for converter in created_converters:
            created_at = converter(created_at, created_col, connection)
        if metadata is not None:
            for converter in metadata_converters:
                metadata = converter(metadata, metadata_col, connection)
        items.append(
            message_item(
                id=message_id,
                seq=seq,
                role=role,
                content=content,
                intent=intent,
                confidence=confidence,
                created_at=created_at,
                metadata=metadata,
            )
        )
    return items, has_more
