"""Domain events: facts about conversations that other parts of Parley act on (webhooks).

Messaging and escalations call `domain_event_record` *inside* the transaction of the change
that causes the event, so an event exists exactly when its change committed. Messaging does not
know who listens: a layer above it (integrations) registers a sink from its `AppConfig.ready`,
which keeps imports pointing down (docs/architecture.md).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

CONVERSATION_CREATED = "conversation.created"
MESSAGE_CREATED = "message.created"
ESCALATION_OPENED = "escalation.opened"
ESCALATION_ASSIGNED = "escalation.assigned"
ESCALATION_RESOLVED = "escalation.resolved"
ESCALATION_SLA_BREACHED = "escalation.sla_breached"
RATING_CREATED = "rating.created"

EVENT_TYPES: tuple[str, ...] = (
    CONVERSATION_CREATED,
    MESSAGE_CREATED,
    ESCALATION_OPENED,
    ESCALATION_ASSIGNED,
    ESCALATION_RESOLVED,
    ESCALATION_SLA_BREACHED,
    RATING_CREATED,
)

DomainEvent = tuple[str, dict[str, Any]]  # (event type, JSON-ready data)


def new_event_id() -> str:
    """A recorded event's id, unique across all events: the one maker of event ids, for the
    sinks that write events (the webhook outbox's rows, its model default) and for the events
    a change's own statement writes (EVENT_ROW_COLUMNS). Standard Webhooks calls it the message
    id; receivers de-duplicate on it. 128 random bits from the operating system, as hex: what
    `uuid.uuid4().hex` gave (less the version's six fixed bits) at a third of its CPU, which
    counts on a path that makes two per message."""
    return f"msg_{secrets.token_hex(16)}"


# A sink receives every event of one call as a list, so it can write them in one statement.
DomainEventSink = Callable[[list[DomainEvent]], None]
_sinks: list[DomainEventSink] = []

# Events written by the change's own statement (PostgreSQL). Messages are written as one
# statement (messaging.fastpath.messages_write; the common turn in autocommit): no BEGIN, no
# INSERT of its own for the events, no COMMIT — three round trips fewer than a transaction
# around the write and a sink call. The events can then only be written by that same statement,
# so a sink that can do it also registers `insert_from`: given the name of a CTE with the
# columns EVENT_ROW_COLUMNS (event_id text, type text, payload jsonb, customer_id bigint or
# NULL, created_at timestamptz), it returns the data-modifying statement (to run as one more
# CTE) that writes those events exactly as the sink itself would have. The statement's event
# ids come from `new_event_id`, like the sink's.
EVENT_ROW_COLUMNS = ("event_id", "type", "payload", "customer_id", "created_at")
EventRowsInsert = Callable[[str], str]
_inserts: dict[DomainEventSink, EventRowsInsert] = {}


def domain_event_sink_register(
    sink: DomainEventSink, *, insert_from: EventRowsInsert | None = None
) -> None:
    """Called once per process from an upper layer's AppConfig.ready()."""
    if sink not in _sinks:
        _sinks.append(sink)
    if insert_from is not None:
        _inserts[sink] = insert_from


def domain_event_inserts(source: str) -> tuple[str, ...] | None:
    """Every sink's statement writing the event rows of CTE `source` (see EVENT_ROW_COLUMNS),
    or None when a sink can only be called — then the caller runs a transaction and calls
    `domain_events_record`. An empty tuple: nobody listens."""
    if any(sink not in _inserts for sink in _sinks):
        return None
    return tuple(_inserts[sink](source) for sink in _sinks)


def domain_event_record(event_type: str, data: dict[str, Any]) -> None:
    """Record that `event_type` happened. Call inside the transaction of the change: a sink
    writes in that transaction (an outbox row), so a rollback takes the event with it.

    `data` must be JSON-ready (ids, strings, ISO datetimes) and name the customer it concerns
    in `customer_id`: erasing that customer removes the event with the rest of their data."""
    domain_events_record([(event_type, data)])


def domain_events_record(events: list[DomainEvent]) -> None:
    """Several events of one change (e.g. the messages of one turn) in one write."""
    for event_type, _data in events:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown domain event {event_type!r}")
    if not events:
        return
    for sink in _sinks:
        sink(events)
