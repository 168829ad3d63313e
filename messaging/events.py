"""Domain events: facts about conversations that other parts of Parley act on (webhooks).

Messaging and escalations call `domain_event_record` *inside* the transaction of the change
that causes the event, so an event exists exactly when its change committed. Messaging does not
know who listens: a layer above it (integrations) registers a sink from its `AppConfig.ready`,
which keeps imports pointing down (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CONVERSATION_CREATED = "conversation.created"
MESSAGE_CREATED = "message.created"
ESCALATION_OPENED = "escalation.opened"
ESCALATION_ASSIGNED = "escalation.assigned"
ESCALATION_RESOLVED = "escalation.resolved"
RATING_CREATED = "rating.created"

EVENT_TYPES: tuple[str, ...] = (
    CONVERSATION_CREATED,
    MESSAGE_CREATED,
    ESCALATION_OPENED,
    ESCALATION_ASSIGNED,
    ESCALATION_RESOLVED,
    RATING_CREATED,
)

DomainEventSink = Callable[[str, dict[str, Any]], None]
_sinks: list[DomainEventSink] = []


def domain_event_sink_register(sink: DomainEventSink) -> None:
    """Called once per process from an upper layer's AppConfig.ready()."""
    if sink not in _sinks:
        _sinks.append(sink)


def domain_event_record(event_type: str, data: dict[str, Any]) -> None:
    """Record that `event_type` happened. Call inside the transaction of the change: a sink
    writes in that transaction (an outbox row), so a rollback takes the event with it."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown domain event {event_type!r}")
    for sink in _sinks:
        sink(event_type, data)
