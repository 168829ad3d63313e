"""A customer's turn has two live routes into the one writer (messaging.fastpath.messages_write):
without a lock when the agent answers a conversation it holds, and with the row created or
locked first for everything else — and for any turn whose conversation changed between the
reading and the write. One scenario table runs every kind of turn through both routes, from
the same rows, and compares what each left: every row (conversations, messages, escalations,
idempotency records, the webhook outbox), the response's bytes and headers, the pushes and the
events. The clock stands still for the test (both runs stamp the same instant); event ids, which
are random, are compared by identity (the same id in the same places)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone as dj_timezone

from accounts.models import User
from escalations.services import escalation_resolve
from integrations.models import WebhookEndpoint
from messaging import services
from tests.messages import post_message, sent
from tests.pushes import Pushes
from tests.snapshots import database_state

pytestmark = pytest.mark.django_db

ANSWERED = "How do I reset my password? 🔑 Grüße"  # the rule-based agent answers it
HUMAN = "I want to talk to a human agent please"  # … and hands this one off


def _active(client: Client, customer: User, operator: User) -> int:
    return int(sent(client, customer, ANSWERED)["conversation_id"])


def _escalated(client: Client, customer: User, operator: User) -> int:
    return int(sent(client, customer, HUMAN)["conversation_id"])


def _acknowledged(client: Client, customer: User, operator: User) -> int:
    conversation_id = _escalated(client, customer, operator)
    sent(client, customer, "is anyone there?", conversation_id)
    return conversation_id


def _resolved(client: Client, customer: User, operator: User) -> int:
    conversation_id = _escalated(client, customer, operator)
    escalation_resolve(conversation_id=conversation_id, actor=operator, notes="done")
    return conversation_id


def _key_used(client: Client, customer: User, operator: User) -> int:
    conversation_id = _active(client, customer, operator)
    sent(client, customer, ANSWERED, conversation_id, **{"Idempotency-Key": "key-1"})
    return conversation_id


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Callable[[Client, User, User], int] | None  # None: a new conversation
    text: str
    without_lock: bool  # the route the turn takes as served
    headers: dict[str, str] = field(default_factory=dict)


SCENARIOS = [
    Scenario("active, answered", _active, ANSWERED, without_lock=True),
    Scenario("resolved, back to the agent", _resolved, ANSWERED, without_lock=True),
    Scenario("active, the agent hands off", _active, HUMAN, without_lock=False),
    Scenario("escalated, first message after the hand-off", _escalated, "hi?", False),
    Scenario("escalated, acknowledged already", _acknowledged, "hello??", False),
    Scenario("new conversation, answered", None, ANSWERED, without_lock=False),
    Scenario("new conversation, handed off", None, HUMAN, without_lock=False),
    Scenario(
        "active, answered, idempotency key",
        _active,
        ANSWERED,
        without_lock=True,
        headers={"Idempotency-Key": "key-1"},
    ),
    Scenario(
        "active, a replayed idempotency key",
        _key_used,
        ANSWERED,
        without_lock=False,  # nothing is written: no route at all
        headers={"Idempotency-Key": "key-1"},
    ),
]


@dataclass
class Outcome:
    status: int
    content: bytes
    headers: dict[str, str]
    pushes: list[Any]
    rows: dict[str, Any]
    locks: int  # how often the conversation's row was locked first


class _RollBack(Exception):
    pass


def _sequences() -> list[tuple[str, int, bool]]:
    """PostgreSQL's sequences as they stand (SQLite's live in a table the rollback restores)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) "
            "FROM pg_sequences WHERE schemaname = current_schema()"
        )
        names = [name for (name,) in cursor.fetchall()]
        state = []
        for name in names:
            cursor.execute(f"SELECT last_value, is_called FROM {name}")  # noqa: S608 - catalog names
            last_value, is_called = cursor.fetchone()
            state.append((name, last_value, is_called))
    return state


def _restore(sequences: list[tuple[str, int, bool]]) -> None:
    with connection.cursor() as cursor:
        for name, last_value, is_called in sequences:
            cursor.execute("SELECT setval(%s, %s, %s)", [name, last_value, is_called])


def _run(
    scenario: Scenario,
    client: Client,
    customer: User,
    conversation_id: int | None,
    *,
    with_lock: bool,
    monkeypatch: pytest.MonkeyPatch,
    pushed: Pushes,
    capture_on_commit: Any,
) -> Outcome:
    """The scenario's request through one route, in a transaction rolled back afterwards: the
    other route then starts from the same rows, the same ids to come and the same budgets."""
    sequences = _sequences()
    cache.clear()  # rate-limit budgets and cached tokens, as before the first run
    pushed.clear()
    locks = []
    real_lock = services.conversation_lock

    def counting_lock(**kwargs: Any) -> Any:
        locks.append(kwargs)
        return real_lock(**kwargs)

    outcome: Outcome | None = None
    try:
        with transaction.atomic(), monkeypatch.context() as patch:
            patch.setattr(services, "conversation_lock", counting_lock)
            if with_lock:  # as if the conversation had changed since it was read
                patch.setattr(services, "_answered_without_lock", lambda current, reply: None)
            with capture_on_commit(execute=True):
                response = post_message(
                    client, customer, scenario.text, conversation_id, **scenario.headers
                )
            outcome = Outcome(
                status=response.status_code,
                content=response.content,
                headers={k: v for k, v in response.headers.items() if k != "X-Request-ID"},
                pushes=list(pushed),
                rows=database_state(),
                locks=len(locks),
            )
            raise _RollBack
    except _RollBack:
        pass
    _restore(sequences)
    assert outcome is not None
    return outcome


_EVENT_ID = re.compile(r"msg_[0-9a-f]{32}")


def _by_identity(value: Any) -> Any:
    """`value` with each (random) event id replaced by its order of first appearance: two
    outcomes compare equal when the same ids stand in the same places."""
    seen: dict[str, str] = {}

    def walk(item: Any) -> Any:
        if isinstance(item, bytes):
            return walk(item.decode()).encode()
        if isinstance(item, str):
            return _EVENT_ID.sub(lambda m: seen.setdefault(m.group(), f"<event{len(seen)}>"), item)
        if isinstance(item, dict):
            return {walk(k): walk(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(v) for v in item]
        return item

    return walk(value)


@pytest.fixture(autouse=True)
def one_instant(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """`timezone.now()` — the services' clock and every model default's — answers one instant
    for the whole test, so both runs stamp their rows, pushes and events alike."""
    instant = dj_timezone.now()

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return instant if tz is not None else instant.replace(tzinfo=None)

    monkeypatch.setattr(dj_timezone, "datetime", Frozen)
    return instant


@pytest.fixture
def webhook_endpoint(db: Any) -> WebhookEndpoint:
    """An active endpoint, so every event is written (to the outbox) and compared."""
    return WebhookEndpoint.objects.create(
        url="https://hooks.example.com/in", events=["message.created"], secret="whsec_x"
    )


@pytest.mark.usefixtures("webhook_endpoint")
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_both_routes_write_the_same(
    scenario: Scenario,
    customer: User,
    operator: User,
    customer_client: Client,
    monkeypatch: pytest.MonkeyPatch,
    pushed: Pushes,
    django_capture_on_commit_callbacks: Any,
) -> None:
    conversation_id = (
        scenario.setup(customer_client, customer, operator) if scenario.setup else None
    )
    run = {
        "pushed": pushed,
        "capture_on_commit": django_capture_on_commit_callbacks,
        "monkeypatch": monkeypatch,
    }
    before = database_state()

    as_served = _run(scenario, customer_client, customer, conversation_id, with_lock=False, **run)
    locked = _run(scenario, customer_client, customer, conversation_id, with_lock=True, **run)

    # Both routes really ran: the one as served takes no lock first when it need not; the
    # other locks an existing conversation's row (a new one is created instead; a replay
    # writes nothing).
    replayed = as_served.headers.get("Idempotent-Replayed") == "true"
    assert locked.locks == (0 if replayed or scenario.setup is None else 1)
    assert as_served.locks == (0 if scenario.without_lock else locked.locks)
    # … and they left the same.
    assert (as_served.status, as_served.headers) == (locked.status, locked.headers)
    assert as_served.status == 200
    assert as_served.content == locked.content
    assert _by_identity(as_served.pushes) == _by_identity(locked.pushes)
    assert _by_identity(as_served.rows) == _by_identity(locked.rows)
    # Every turn but a replay wrote (the comparison above is not of two empty outcomes).
    assert (as_served.rows != before) is not replayed
    assert bool(as_served.pushes) is not replayed
    # The headers set on the response before its body was rendered survive the rendering.
    assert as_served.headers["RateLimit-Limit"] == "10"
    assert as_served.headers["Content-Type"] == "application/json; charset=utf-8"
