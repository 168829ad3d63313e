"""Fixtures for the inbox tests: the escalation fixtures (escalated and resolved conversations
built with the real services, operators in the Operators group) and a recorder for domain events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from messaging import events
from tests.escalations.conftest import (  # noqa: F401 - fixtures re-exported for this package
    admin_operator,
    escalated,
    escalation,
    operator_admin_client,
    operators_group,
    resolved,
    scripted_agent,
    second_operator,
)
from tests.realtime.conftest import _fresh_channel_layer  # noqa: F401 - autouse, per test

Events = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def recorded_events() -> Iterator[Events]:
    """Every domain event recorded while the test runs (a sink like the webhook outbox's)."""
    recorded: Events = []
    sink = recorded.extend  # one bound method: the same object to register and to remove
    events.domain_event_sink_register(sink)
    yield recorded
    events._sinks.remove(sink)  # pytest runs this whether or not the test passed
