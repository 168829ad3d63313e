"""A message's statements as fixed SQL, and the one writer of a conversation's messages.

Under load the ORM's query construction and compilation was the largest share of a message's
CPU (docs/benchmarks.md: "Where the CPU goes"). The statements that run on every message are
here as fixed SQL, built once per process from what the ORM path is built from: the models'
fields, the ownership rule (`messaging.permissions.conversations_of`, the same Q the selectors
filter by, compiled by core.fixedsql.where) and the message's client shape
(`messaging.schemas.MessageOut`).

- `messages_write`: the one writer of messages — every branch of a customer's turn
  (messaging.services.message_send: `turn_write` is its common case, the customer's message and
  the agent's answer) and every operator or system message (services.conversation_append, used
  by escalations). It is the one place that advances the conversation's `last_seq` and turn
  counters: an `UPDATE … RETURNING` of the conversation, whose WHERE holds id, owner and —
  when the caller read it without a lock — the status the caller decided on, takes the row
  lock and yields the new seqs; the messages are inserted with them; their `message.created`
  domain events are recorded and the messages pushed after commit. On PostgreSQL this is one
  statement, which also writes the events through the sinks that can
  (messaging.events.domain_event_inserts: the webhook outbox), so outside an atomic block it
  commits on its own — no BEGIN, no COMMIT. Concurrent writers queue on the row lock; each
  re-reads the committed row, so seqs stay gap-free and unique. On SQLite (RETURNING needs
  3.35) the UPDATE and the INSERT run one after the other in one transaction (IMMEDIATE: it
  holds the database's write lock), and the sinks are called in it.
- `agent_context`: the agent's context (the customer's own conversation's status and counter,
  and its last messages) in one statement, without model instances. The REST route has the
  same statement travel in the token's user lookup (`agent_context_along`, carried by
  accounts.fastauth.ReadAlong: accounts may not import messaging), so a message costs two
  round trips in all: that lookup and the write.
- `history_page`: `GET /conversations/{id}/history` — the reader's right to the conversation
  and one page of its messages in one statement, as rows the endpoint renders through
  `HistoryOut`'s reader (messaging.schemas.history_out), without per-message schemas.

None from any of them means "not found for you" (missing, someone else's, or — for a write that
names the status it expects — no longer in that status), and no row was touched.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.models import JSONField, Q
from django.utils import timezone

from accounts.fastauth import ReadAlong
from core.fixedsql import column, converters, prepared_cursor, table, where
from messaging.agent import TurnSnapshot
from messaging.events import (
    MESSAGE_CREATED,
    DomainEvent,
    domain_event_inserts,
    domain_events_record,
    new_event_id,
)
from messaging.models import Conversation, Message, is_possible_id
from messaging.permissions import conversations_of, reader_scope
from messaging.realtime import messages_created_event, publish_on_commit
from messaging.schemas import MessageOut, message_event_data, message_payload

if TYPE_CHECKING:
    from accounts.auth import Principal


# --- writing messages ----------------------------------------------------------------------------


@dataclass
class NewMessage:
    """A message to append: the values of its row that are its own. Each field is the Message
    column of that attribute name; the conversation, the seq and created_at belong to the change
    (`messages_write`)."""

    role: str
    content: str
    intent: str | None = None
    confidence: float | None = None
    author_id: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A Message.Role member is stored and sent as its plain text.
        self.role = str(self.role)


@dataclass(kw_only=True)
class WrittenMessage(NewMessage):
    """A message as its row was written (what `message_payload` reads)."""

    id: int
    seq: int
    created_at: datetime


@dataclass(frozen=True)
class Written:
    """What one `messages_write` wrote: the conversation's counters after it, and its messages
    in seq order, also as clients see them (`message_payload`: the pushes and the events)."""

    conversation_id: int
    turn_count: int
    agent_turns: int
    last_seq: int
    updated_at: datetime
    messages: tuple[WrittenMessage, ...]
    payloads: tuple[dict[str, Any], ...]

    @property
    def customer_message(self) -> WrittenMessage:
        """The first message: a turn's customer message."""
        return self.messages[0]

    @property
    def answer(self) -> WrittenMessage:
        """The last message: a turn's answer (when the turn wrote one)."""
        return self.messages[-1]


def message_instance(conversation: Conversation, message: WrittenMessage) -> Message:
    """A written message as the model instance an ORM insert would have left (for callers
    that hand a Message on: the operator's reply, the admin)."""
    instance = Message(
        conversation=conversation,
        id=message.id,
        seq=message.seq,
        created_at=message.created_at,
        **{name: getattr(message, name) for name in _NEW_MESSAGE_FIELDS},
    )
    instance._state.adding = False
    instance._state.db = conversation._state.db
    return instance


# A new message's row, column by column (Message's concrete fields but the key, in the model's
# order): the conversation and the seq come from the conversation row the statement updates,
# then every column that is the NewMessage field of its attribute name, then created_at, the
# change's one instant.
_NEW_MESSAGE_FIELDS = tuple(f.name for f in fields(NewMessage))
# A message's client values that only the INSERT knows (MessageOut's keys).
_KNOWN_AFTER_INSERT = ("id", "seq")
# Values the ORM would send as they are to any column but a JSON one (its preparation is the
# identity for them): only the others go through the field's get_db_prep_save.
_SENT_AS_THEY_ARE = (str, int, float, type(None))


@dataclass(frozen=True)
class _MessageRow:
    written: tuple[Any, ...]  # every written field, in the model's order
    own: tuple[tuple[Any, bool], ...]  # (field, whether its values always need preparing)
    created_at: Any


@cache
def _message_row() -> _MessageRow:
    """The description above, checked against the model: a column added to Message, or moved,
    breaks here, loudly, rather than in the statement."""
    written = tuple(f for f in Message._meta.concrete_fields if not f.primary_key)
    names = tuple(f.name for f in written)
    own = written[2:-1]
    if (
        names[:2] != ("conversation", "seq")
        or names[-1] != "created_at"
        or tuple(f.attname for f in own) != _NEW_MESSAGE_FIELDS
    ):
        raise ImproperlyConfigured(
            f"messaging.fastpath.NewMessage {_NEW_MESSAGE_FIELDS} does not describe Message's "
            f"columns {names}"
        )
    if not set(_KNOWN_AFTER_INSERT) <= set(MessageOut.model_fields):
        raise ImproperlyConfigured("MessageOut lost a key the INSERT fills in")
    return _MessageRow(
        written=written,
        own=tuple((f, isinstance(f, JSONField)) for f in own),
        created_at=written[-1],
    )


_CONVERSATION_COLUMNS = ("id", "last_seq", "turn_count", "agent_turns", "status", "updated_at")


@cache
def _write_sql(
    alias: str, count: int, check_status: bool, event_inserts: tuple[str, ...] | None
) -> tuple[str, ...]:
    """The statement(s) of `messages_write` for `count` messages on connection `alias`, with or
    without the status condition, and with the event sinks' inserts (PostgreSQL, when every
    sink can write from a statement; an empty tuple: nobody listens). Built once per shape,
    names from the models, every value bound."""
    connection = connections[alias]
    c = {name: column(Conversation, name) for name in _CONVERSATION_COLUMNS}
    condition = Q(pk=0) & conversations_of(0)
    if check_status:
        condition &= Q(status="")
    clause, bound = where(Conversation, condition, connection)
    if bound != 2 + check_status:
        raise ImproperlyConfigured(f"unexpected condition of messages_write: {clause}")
    # The one place seqs and turn counters advance: `count` seqs, the caller's turn counters.
    update = (
        f"UPDATE {table(Conversation)} SET {c['last_seq']} = {c['last_seq']} + {count}, "  # noqa: S608 - names from the models, values bound
        f"{c['turn_count']} = {c['turn_count']} + %s, "
        f"{c['agent_turns']} = {c['agent_turns']} + %s, "
        f"{c['status']} = %s, {c['updated_at']} = %s WHERE {clause} "
        f"RETURNING {c['id']}, {c['last_seq']}, {c['turn_count']}, {c['agent_turns']}"
    )
    written = _message_row().written
    message = table(Message)
    columns = ", ".join(f.column for f in written)
    message_id, seq = column(Message, "id"), column(Message, "seq")
    if connection.vendor != "postgresql":
        row = "(" + ", ".join("%s" for _ in written) + ")"
        insert = (
            f"INSERT INTO {message} ({columns}) VALUES {', '.join([row] * count)} "  # noqa: S608 - names from the models
            f"RETURNING {message_id}, {seq}"
        )
        return update, insert

    def value(f: Any, back: int) -> str:
        if f.name == "conversation":
            return f"c.{c['id']}"
        if f.name == "seq":
            return f"c.{c['last_seq']} - {back}"
        # Bound on the server, a NULL (no intent or confidence) would otherwise reach the
        # INSERT through the UNION as text: each value cast to its column's type.
        return f"%s::{f.cast_db_type(connection)}"

    # Message number k (0-based) gets the seq `count - 1 - k` below the new last_seq.
    rows = " UNION ALL ".join(
        f"SELECT {', '.join(value(f, count - 1 - k) for f in written)} FROM c"  # noqa: S608
        for k in range(count)
    )
    events = ""
    if event_inserts:
        # The messages' message.created events (messaging.events.EVENT_ROW_COLUMNS): each
        # payload is bound without the values only the INSERT knows, which jsonb `||` adds
        # (jsonb keeps no key order, so the stored value equals the data `domain_events_record`
        # would have been given); then every sink's INSERT.
        # Each message's own event id and payload are picked by its seq with a CASE: joining
        # the messages to a VALUES list of them cost PostgreSQL 6 % more per turn (pgbench of
        # the captured statement, docs/benchmarks.md), though no row is read either way.
        filled = ", ".join(f"'{key}', m.{column(Message, key)}" for key in _KNOWN_AFTER_INSERT)

        def by_seq() -> str:
            # Message number k (0-based): seq `count - 1 - k` below the new last_seq.
            whens = " ".join(
                f"WHEN c.{c['last_seq']} - {count - 1 - k} THEN %s::text" for k in range(count)
            )
            return f"CASE m.{seq} {whens} END"

        event_rows = (
            f", e AS (SELECT {by_seq()} AS event_id, %s::text AS type, "  # noqa: S608 - names from the models
            f"({by_seq()})::jsonb || jsonb_build_object({filled}) AS payload, "
            f"%s::bigint AS customer_id, %s::timestamptz AS created_at FROM m CROSS JOIN c)"
        )
        events = event_rows + "".join(
            f", o{n} AS ({insert})" for n, insert in enumerate(event_inserts)
        )
    return (
        f"WITH c AS ({update}), m AS (INSERT INTO {message} ({columns}) {rows} "  # noqa: S608 - names from the models
        f"RETURNING {message_id}, {seq}){events} "
        f"SELECT m.{message_id}, m.{seq}, c.{c['last_seq']}, c.{c['turn_count']}, "
        f"c.{c['agent_turns']} FROM m CROSS JOIN c ORDER BY m.{seq}",
    )


def _message_created(
    payloads: Sequence[dict[str, Any]], conversation_id: int, customer_id: int
) -> list[DomainEvent]:
    """The messages' `message.created` events: the one place they are built."""
    return [
        (
            MESSAGE_CREATED,
            message_event_data(payload, conversation_id=conversation_id, customer_id=customer_id),
        )
        for payload in payloads
    ]


def messages_write(
    *,
    conversation_id: int,
    customer_id: int,
    messages: Sequence[NewMessage],
    status: str,
    expected_status: str | None = None,
    turns: int = 0,
    agent_turns: int = 0,
    now: datetime | None = None,
    using: str = "default",
) -> Written | None:
    """Append `messages` to customer `customer_id`'s conversation `conversation_id` with the
    next seqs, leave it in `status`, advance its turn counters by `turns` and `agent_turns`,
    record the messages' `message.created` domain events and push them after commit.

    `expected_status`: write only if the conversation is still in it (a caller that decided
    on a status it read without the lock). None — and no row changed, no event, no push — when
    the conversation is missing, someone else's, or not in `expected_status`.

    Works inside the caller's atomic block (then it commits with it) or outside one. On
    PostgreSQL, when every event sink can write from a statement, the rows and the events are
    one statement: outside an atomic block it is its own transaction, one round trip in all.
    Otherwise the write and `domain_events_record` share one transaction."""
    if not is_possible_id(conversation_id):
        return None
    if not messages:
        raise ValueError("messages_write needs at least one message")
    now = now or timezone.now()
    connection = connections[using]
    row = _message_row()
    # The messages as they will be written, id and seq still to come.
    pending = tuple(WrittenMessage(**vars(m), id=0, seq=0, created_at=now) for m in messages)
    payloads = tuple(message_payload(m) for m in pending)
    # One instant for the change: the messages' created_at and the conversation's updated_at.
    at = row.created_at.get_db_prep_save(now, connection)
    head: list[Any] = [turns, agent_turns, str(status), at, conversation_id, customer_id]
    if expected_status is not None:
        head.append(str(expected_status))
    values = []
    for message in pending:
        own = []
        for f, always in row.own:
            value = getattr(message, f.attname)
            if always or type(value) not in _SENT_AS_THEY_ARE:
                value = f.get_db_prep_save(value, connection)
            own.append(value)
        values.append(own)
    inserts = domain_event_inserts("e") if connection.vendor == "postgresql" else None
    statements = _write_sql(using, len(messages), expected_status is not None, inserts)
    if inserts is not None:
        # One statement, with the events when anyone listens.
        events: list[Any] = []
        if inserts:
            # In the statement's order: every event id, the type, every payload, the rest.
            templates = [
                json.dumps({k: v for k, v in data.items() if k not in _KNOWN_AFTER_INSERT})
                for _type, data in _message_created(payloads, conversation_id, customer_id)
            ]
            events = [
                *(new_event_id() for _ in templates),
                MESSAGE_CREATED,
                *templates,
                customer_id,
                at,
            ]
        found = _write_rows(using, statements, head, values, at, events)
        written = _written(conversation_id, found, pending, payloads, now)
    else:
        with transaction.atomic(using=using, savepoint=False):
            found = _write_rows(using, statements, head, values, at, [])
            written = _written(conversation_id, found, pending, payloads, now)
            if written is not None:
                domain_events_record(
                    _message_created(written.payloads, conversation_id, customer_id)
                )
    if written is not None:
        publish_on_commit([messages_created_event(conversation_id, written.payloads)])
    return written


_Found = tuple[list[tuple[int, int]], tuple[int, int, int]] | None


def _write_rows(
    using: str,
    statements: tuple[str, ...],
    head: list[Any],
    values: list[list[Any]],
    at: Any,
    events: list[Any],
) -> _Found:
    """Run the statement(s): ([(id, seq) of each message, in seq order], (last_seq,
    turn_count, agent_turns)), or None when the conversation did not qualify."""
    with prepared_cursor(using) as cursor:
        if len(statements) == 1:  # PostgreSQL: the conversation and the seqs come from `c`
            params = list(head)
            for own in values:
                params += own
                params.append(at)
            cursor.execute(statements[0], params + events)
            rows = cursor.fetchall()
            if not rows:
                return None
            return [(row[0], row[1]) for row in rows], tuple(rows[0][2:5])  # type: ignore[return-value]
        # SQLite: inside messages_write's transaction, which holds the database's write lock.
        update, insert = statements
        cursor.execute(update, head)
        conversation = cursor.fetchone()
        if conversation is None:
            return None
        conversation_id, last_seq, turns, agent_turns = conversation
        first_seq = last_seq - len(values) + 1
        params = []
        for k, own in enumerate(values):
            params += [conversation_id, first_seq + k, *own, at]
        cursor.execute(insert, params)
        rows = sorted(cursor.fetchall(), key=lambda row: row[1])
    return [(row[0], row[1]) for row in rows], (last_seq, turns, agent_turns)


def _written(
    conversation_id: int,
    found: _Found,
    pending: tuple[WrittenMessage, ...],
    payloads: tuple[dict[str, Any], ...],
    now: datetime,
) -> Written | None:
    if found is None:
        return None
    rows, (last_seq, turns, agent_turns) = found
    for message, (message_id, seq) in zip(pending, rows, strict=True):
        message.id, message.seq = message_id, seq
    return Written(
        conversation_id=conversation_id,
        turn_count=turns,
        agent_turns=agent_turns,
        last_seq=last_seq,
        updated_at=now,
        messages=pending,
        # `|` keeps the keys where they are: id and seq stay first, as MessageOut lists them.
        payloads=tuple(
            payload | dict(zip(_KNOWN_AFTER_INSERT, row, strict=True))
            for payload, row in zip(payloads, rows, strict=True)
        ),
    )


def turn_write(
    *,
    conversation_id: int,
    customer_id: int,
    text: str,
    reply_text: str,
    intent: str | None,
    confidence: float | None,
    metadata: dict[str, Any],
    expected_status: str = Conversation.Status.ACTIVE,
    now: datetime | None = None,
    using: str = "default",
) -> Written | None:
    """The common turn, through `messages_write`: the customer's message and the agent's answer
    (both carrying the answer's intent and confidence) on a conversation the agent holds —
    `expected_status` active, or resolved (back to the agent) — which is active afterwards,
    with one customer turn and one agent turn more. None, and nothing written, when the
    conversation is missing, someone else's or no longer in `expected_status`."""
    return messages_write(
        conversation_id=conversation_id,
        customer_id=customer_id,
        messages=(
            NewMessage(
                role=Message.Role.CUSTOMER,
                content=text,
                intent=intent,
                confidence=confidence,
                author_id=customer_id,
            ),
            NewMessage(
                role=Message.Role.AGENT,
                content=reply_text,
                intent=intent,
                confidence=confidence,
                metadata=dict(metadata),
            ),
        ),
        status=Conversation.Status.ACTIVE,
        expected_status=expected_status,
        turns=1,
        agent_turns=1,
        now=now,
        using=using,
    )


# --- the agent's context -------------------------------------------------------------------------

RECENT_MESSAGES = 10  # what the agent sees of the conversation (ConversationSnapshot)


@dataclass(frozen=True)
class AgentContext:
    """What a turn reads of the customer's conversation before it takes any lock: the status
    that picks the path, and what the agent may see (messaging.agent.ConversationSnapshot:
    the agent turns so far and the last messages, oldest first). Nothing else of the row is
    read before the write, whose statement checks the status again (or, for the branches that
    need to read under the lock, services.conversation_lock re-reads the row)."""

    conversation_id: int
    status: str
    agent_turns: int
    recent_messages: tuple[TurnSnapshot, ...]


_CONTEXT_CONVERSATION_COLUMNS = ("id", "status", "agent_turns")
# What the agent sees of a message: TurnSnapshot's fields, each the Message column of its name.
_CONTEXT_MESSAGE_COLUMNS = tuple(f.name for f in fields(TurnSnapshot))


CONTEXT_ORDER = "context_seq"


@cache
def _context_sql(alias: str) -> str:
    conversation = table(Conversation)
    columns = ", ".join(
        [f"{conversation}.{column(Conversation, name)}" for name in _CONTEXT_CONVERSATION_COLUMNS]
        + [f"m.{column(Message, name)}" for name in _CONTEXT_MESSAGE_COLUMNS]
    )
    clause, bound = where(Conversation, Q(pk=0) & conversations_of(0), connections[alias])
    if bound != 2:
        raise ImproperlyConfigured(f"unexpected condition of agent_context: {clause}")
    last_seq = f"{conversation}.{column(Conversation, 'last_seq')}"
    # seq runs 1..last_seq without gaps (written only under the row lock), so "seq above
    # last_seq - N" is the last N messages, read through the (conversation, seq) unique index;
    # the LEFT JOIN keeps a conversation that has no messages yet.
    # The seq last, as CONTEXT_ORDER: what orders the rows when this read travels in the token
    # lookup's statement (accounts.fastauth.ReadAlong), where its own ORDER BY would not hold.
    seq = f"m.{column(Message, 'seq')}"
    return (
        f"SELECT {columns}, {seq} AS {CONTEXT_ORDER} FROM {conversation} "  # noqa: S608 - model names
        f"LEFT JOIN {table(Message)} m ON m.{column(Message, 'conversation')} = "
        f"{conversation}.{column(Conversation, 'id')} "
        f"AND {seq} > {last_seq} - {RECENT_MESSAGES} "
        f"WHERE {clause} ORDER BY {seq}"
    )


def agent_context(
    *, customer_id: int, conversation_id: int, using: str = "default"
) -> AgentContext | None:
    """The turn's reading of the customer's own conversation, in one fixed statement and
    without model instances: its id, status and agent turns, and its last messages as the
    agent sees them; None when the conversation is missing or someone else's.

    The values are the rows' own: none of these columns has a from-database converter on
    SQLite or PostgreSQL (tests/messaging/test_fastpath.py compares the result with the model
    instances the ORM reads, on both)."""
    if not is_possible_id(conversation_id):
        return None
    with prepared_cursor(using) as cursor:
        cursor.execute(_context_sql(using), [conversation_id, customer_id])
        return _agent_context_of(cursor.fetchall())


def _agent_context_of(rows: Sequence[Sequence[Any]]) -> AgentContext | None:
    """The context from `_context_sql`'s rows; None for none, or for the one row of NULLs a
    read carried in the token lookup yields when it found nothing."""
    if not rows or rows[0][0] is None:
        return None
    found_id, status, agent_turns = rows[0][:3]
    return AgentContext(
        conversation_id=found_id,
        status=status,
        agent_turns=agent_turns,
        recent_messages=tuple(
            TurnSnapshot(*row[3:-1])
            for row in rows
            if row[3] is not None  # the one row of a conversation without messages
        ),
    )


@dataclass(frozen=True)
class ContextRead:
    """`agent_context` for customer `customer_id`'s conversation `conversation_id`, read
    ahead (in the token lookup's statement, `agent_context_along`): `context` None means not
    found for them, as from `agent_context`."""

    customer_id: int
    conversation_id: int
    context: AgentContext | None


def agent_context_along(
    *, customer_id: int, conversation_id: int, using: str = "default"
) -> ReadAlong | None:
    """`agent_context`'s statement, to travel in the token lookup's (accounts.fastauth): the
    message route's two reads in one round trip. None for an id no conversation can have."""
    if not is_possible_id(conversation_id):
        return None
    return ReadAlong(
        sql=_context_sql(using), params=(conversation_id, customer_id), order_by=CONTEXT_ORDER
    )


def context_read_of(along: ReadAlong | None, *, using: str = "default") -> ContextRead | None:
    """What an `agent_context_along` read found, once its token lookup ran; None when `along`
    is not such a read or did not run (the user was not found), so the turn reads for itself."""
    if along is None or along.rows is None or along.sql != _context_sql(using):
        return None
    conversation_id, customer_id = along.params
    return ContextRead(
        customer_id=customer_id,
        conversation_id=conversation_id,
        context=_agent_context_of(along.rows),
    )


# --- a conversation's history --------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryPage:
    """One page of a conversation's history, as `HistoryOut` reads it
    (messaging.schemas.history_out): the messages are rows with MessageOut's attributes."""

    conversation_id: int
    messages: list[Any]  # _HistoryRow
    has_more: bool


# The message columns a page reads: MessageOut's fields that are Message columns (the others,
# author_name, MessageOut resolves from the metadata read beside them).
_HISTORY_MESSAGE_COLUMNS = tuple(
    name for name in MessageOut.model_fields if name in {f.name for f in Message._meta.fields}
)


@cache
def _history_sql(alias: str, *, after: bool, before: bool, any_reader: bool) -> str:
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
               -> Index Scan using messaging_conversation_pkey on messaging_conversation
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
    seq = column(Message, "seq")
    bounds = (f" AND {seq} > %s" if after else "") + (f" AND {seq} < %s" if before else "")
    columns = ", ".join(message.values())
    condition = Q(pk=0) & conversations_of(None if any_reader else 0)
    clause, bound = where(Conversation, condition, connections[alias])
    if bound != 1 + (not any_reader):
        raise ImproperlyConfigured(f"unexpected condition of history_page: {clause}")
    # Only an operator message's metadata is read (its author_name): the others' is not sent.
    return (
        f"SELECT {', '.join(f'm.{name}' for name in message.values())}, m.md "  # noqa: S608
        f"FROM {table(Conversation)} LEFT JOIN ("
        f"SELECT {columns}, CASE WHEN {message['role']} = %s THEN {metadata} END AS md "
        f"FROM {table(Message)} WHERE {conversation_fk} = %s{bounds} "
        f"ORDER BY {seq} {'ASC' if after else 'DESC'} LIMIT %s"
        f") m ON TRUE WHERE {clause} ORDER BY m.{seq}"
    )


def history_page(
    *,
    principal: Principal,
    conversation_id: int,
    limit: int,
    after_seq: int | None = None,
    before_seq: int | None = None,
    using: str = "default",
) -> HistoryPage | None:
    """The reader's right to the conversation (their own, or any for
    `messaging.permissions.reader_scope`) and one page of its messages, oldest first, and
    whether more exist in the direction being paged, in one fixed statement; None when the
    conversation is missing or not the caller's to read.

    after_seq → the first `limit` after it (has_more: newer remain); otherwise the latest `limit`
    before `before_seq` (or of all) (has_more: older remain)."""
    if not is_possible_id(conversation_id):
        return None
    owner = reader_scope(principal)
    forward = after_seq is not None
    sql = _history_sql(
        using, after=forward, before=before_seq is not None, any_reader=owner is None
    )
    params: list[Any] = [Message.Role.OPERATOR.value, conversation_id]
    if after_seq is not None:
        params.append(after_seq)
    if before_seq is not None:
        params.append(before_seq)
    params += [limit + 1, conversation_id]
    if owner is not None:
        params.append(owner)
    connection = connections[using]
    with prepared_cursor(using) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return None
    if rows[0][0] is None:  # a readable conversation with nothing in this page
        return HistoryPage(conversation_id=conversation_id, messages=[], has_more=False)
    has_more = len(rows) > limit
    if has_more:
        # Ascending either way: paging forward drops the newest extra, backward the oldest.
        rows = rows[:limit] if forward else rows[len(rows) - limit :]
    # The ORM's from-database converters (accounts.fastauth's instance_from_row uses the same).
    by_name = {name: (found, col) for _, name, found, col in converters(Message, connection)}
    names: tuple[str, ...] = _HistoryRow._fields
    converted = [(index, *by_name[name]) for index, name in enumerate(names) if name in by_name]
    # The statement's columns are the row's fields: tuple.__new__ skips _make's length check.
    make = partial(tuple.__new__, _HistoryRow)
    messages = []
    for row in rows:
        for index, _found, _col in converted:
            if row[index] is not None:  # (only an operator message's metadata is read)
                row = _converted(row, converted, connection)  # noqa: PLW2901
                break
        messages.append(make(row))
    return HistoryPage(conversation_id=conversation_id, messages=messages, has_more=has_more)


def _converted(row: tuple[Any, ...], converted: list[Any], connection: Any) -> list[Any]:
    values = list(row)
    for index, found, col in converted:
        if values[index] is not None:
            for converter in found:
                values[index] = converter(values[index], col, connection)
    return values


# A page's row: MessageOut's columns and the metadata its author_name is resolved from.
_HistoryRow: Any = namedtuple("_HistoryRow", (*_HISTORY_MESSAGE_COLUMNS, "metadata"))  # type: ignore[misc]  # noqa: PYI024
