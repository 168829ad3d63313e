"""The outbox write (`integrations.delivery.outbox_write`) and the sweeper's pace.

The write is one fixed `INSERT … SELECT … WHERE EXISTS (an active endpoint)`: nothing is written
when no endpoint could ever receive the event, and otherwise the same rows the ORM's
`bulk_create` wrote before (compared here with that old path, on both databases)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from escalations.inbox import rating_create
from integrations import delivery
from integrations.delivery import (
    SWEEP_BATCH,
    outbox_write,
    webhook_outbox_sweep_until_caught_up,
    worker_run_until_idle,
)
from integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from messaging import events
from messaging.events import DomainEvent
from messaging.models import Conversation
from messaging.schemas import message_payload
from messaging.services import message_send
from tests.integrations.scenarios import HUMAN, escalation_lifecycle
from tests.messages import sent_directly
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db

ANSWERED = "How do I reset my password?"  # the rule-based agent answers it (the fast path)
EVENT_ID = re.compile(r"^msg_[0-9a-f]{32}$")


def _every_kind_of_change(customer: User, operator: User) -> None:
    """Every door that records domain events: a new conversation (general path) that
    escalates, assignment, an operator's late reply, resolution, a rating, and a turn on an
    active conversation (messaging.fastpath)."""
    conversation_id = escalation_lifecycle(customer, operator)
    rating_create(customer=customer, conversation_id=conversation_id, score=5, comment="ok")
    second = sent_directly(customer, ANSWERED)["conversation_id"]
    sent_directly(customer, ANSWERED, conversation_id=second)


def _endpoint(*, active: bool = True, types: tuple[str, ...] = events.EVENT_TYPES) -> Any:
    return WebhookEndpoint.objects.create(
        url="https://hooks.example.com/in", events=list(types), secret="whsec_x", is_active=active
    )


# --- Nothing is written when nobody could receive it -------------------------------------------


def test_no_endpoint_no_rows_for_any_kind_of_change(
    customer: User, operator: User, recorded_events: list[DomainEvent]
) -> None:
    _every_kind_of_change(customer, operator)
    # Every kind of event was recorded, so the sink was called for each …
    assert {event_type for event_type, _ in recorded_events} == set(events.EVENT_TYPES)
    # … and wrote nothing.
    assert WebhookEvent.objects.count() == 0


def test_an_inactive_endpoint_is_no_endpoint(
    customer: User, operator: User, recorded_events: list[DomainEvent]
) -> None:
    _endpoint(active=False)
    _every_kind_of_change(customer, operator)
    assert len(recorded_events) > 10
    assert WebhookEvent.objects.count() == 0


def test_with_an_endpoint_every_recorded_event_has_its_row(
    customer: User, operator: User, recorded_events: list[DomainEvent]
) -> None:
    # Subscribed to one type only: rows are written for every type all the same (the sweep
    # filters by type, as before).
    _endpoint(types=("rating.created",))
    _every_kind_of_change(customer, operator)
    rows = list(WebhookEvent.objects.order_by("id"))
    assert [(row.type, row.payload, row.customer_id) for row in rows] == [
        (event_type, data, data["customer_id"]) for event_type, data in recorded_events
    ]
    assert {row.type for row in rows} == set(events.EVENT_TYPES)
    assert all(EVENT_ID.match(row.event_id) for row in rows)
    assert len({row.event_id for row in rows}) == len(rows)
    assert all(row.dispatched_at is None for row in rows)


def test_the_decision_is_the_statements_own_never_cached(customer: User) -> None:
    endpoint = _endpoint(active=False)
    sent_directly(customer, ANSWERED)
    assert WebhookEvent.objects.count() == 0
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=True)
    sent_directly(customer, ANSWERED)
    assert WebhookEvent.objects.count() == 3  # conversation.created + two message.created
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
    sent_directly(customer, ANSWERED)
    assert WebhookEvent.objects.count() == 3
    # An endpoint created earlier in the same transaction is seen by the statement.
    with transaction.atomic():
        _endpoint()
        outbox_write([("conversation.created", {"customer_id": customer.pk})])
    assert WebhookEvent.objects.count() == 4


def test_a_rolled_back_change_leaves_no_row(customer: User) -> None:
    _endpoint()

    def change() -> None:
        with transaction.atomic():
            outbox_write([("conversation.created", {"customer_id": customer.pk})])
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError, match="the change failed"):
        change()
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize("with_endpoint", [False, True])
def test_still_one_statement_per_change(customer: User, with_endpoint: bool) -> None:
    if with_endpoint:
        _endpoint()

    def outbox_statements(conversation_id: int | None) -> int:
        with CaptureQueriesContext(connection) as queries:
            message_send(customer=customer, conversation_id=conversation_id, text=ANSWERED)
        return sum(
            'INSERT INTO "integrations_webhookevent"' in q["sql"] for q in queries.captured_queries
        )

    # A new conversation: conversation.created (general path), then the turn's two messages.
    assert outbox_statements(None) == 2
    conversation_id = sent_directly(customer, ANSWERED)["conversation_id"]
    # The fast path's turn: on PostgreSQL its one WITH statement holds the outbox's INSERT.
    assert outbox_statements(conversation_id) == 1
    assert WebhookEvent.objects.count() == (8 if with_endpoint else 0)


# --- The same rows as the ORM's bulk_create -----------------------------------------------------


def _bulk_created(batch: list[DomainEvent]) -> None:
    """The same events as Django itself writes the rows (WebhookEvent.objects.bulk_create):
    the fixed INSERT must store what the ORM would."""
    now = timezone.now()
    WebhookEvent.objects.bulk_create(
        [
            WebhookEvent(
                type=event_type,
                payload=data,
                customer_id=data.get("customer_id"),
                created_at=now,
            )
            for event_type, data in batch
        ]
    )


def _stored(ids: list[int]) -> list[tuple[Any, ...]]:
    """The rows as the database holds them (the payload as its stored text)."""
    placeholders = ", ".join("%s" for _ in ids)
    sql = (
        "SELECT event_id, type, CAST(payload AS text), customer_id, created_at, "  # noqa: S608
        f"dispatched_at FROM integrations_webhookevent WHERE id IN ({placeholders}) ORDER BY id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        return list(cursor.fetchall())


def test_the_rows_are_those_bulk_create_wrote(
    customer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    _endpoint()
    batch: list[DomainEvent] = [
        ("conversation.created", {"conversation_id": 7, "customer_id": customer.pk}),
        (
            "message.created",
            {
                "id": 12,
                "seq": 1,
                "role": "customer",
                "content": 'Grüße — "quoted" \\ back\nslash 🙂',
                "intent": None,
                "confidence": 0.875,
                "created_at": "2026-12-01T08:00:00.123456+00:00",
                "author_name": None,
                "metadata": {"nested": [1, 2.5, True, None, {"k": "v"}]},
                "conversation_id": 7,
                "customer_id": customer.pk,
            },
        ),
        ("rating.created", {"score": 5}),  # no customer_id: a null customer, as before
    ]
    at = datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: at)

    with transaction.atomic():
        _bulk_created(batch)
    old_ids = list(WebhookEvent.objects.order_by("id").values_list("id", flat=True))
    with transaction.atomic():
        outbox_write(batch)
    new_ids = list(
        WebhookEvent.objects.exclude(id__in=old_ids).order_by("id").values_list("id", flat=True)
    )
    assert len(old_ids) == len(new_ids) == 3

    old, new = _stored(old_ids), _stored(new_ids)
    assert [row[1:] for row in new] == [row[1:] for row in old]
    assert all(EVENT_ID.match(row[0]) for row in old + new)
    assert len({row[0] for row in old + new}) == 6
    # And as the ORM reads them back.
    fields = ("type", "payload", "customer_id", "created_at", "dispatched_at")
    by_orm = WebhookEvent.objects.order_by("id").values_list(*fields)
    assert list(by_orm.filter(id__in=new_ids)) == list(by_orm.filter(id__in=old_ids))
    assert {row.created_at for row in WebhookEvent.objects.all()} == {at}


# --- The turn's own statement (PostgreSQL) -----------------------------------------------------


def _turn(customer: User, conversation_id: int) -> Any:
    from messaging import fastpath

    return fastpath.turn_write(
        conversation_id=conversation_id,
        customer_id=customer.pk,
        text='Grüße — "quoted" 🙂',
        reply_text="Here is how.",
        intent="account",
        confidence=0.875,
        metadata={"nested": [1, 2.5, True, None]},
        now=datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=UTC),
    )


def test_only_sinks_that_can_write_from_a_statement_are_folded_in(
    recorded_events: list[DomainEvent],
) -> None:
    # `recorded_events` registered a sink that can only be called: the turn must call it.
    assert events.domain_event_inserts("e") is None
    events._sinks.remove(recorded_sink := events._sinks[-1])
    try:
        inserts = events.domain_event_inserts("e")
        assert inserts == (delivery.outbox_insert_from("e"),)
        assert 'INSERT INTO "integrations_webhookevent"' in inserts[0]
        assert "FROM e WHERE EXISTS" in inserts[0]
    finally:
        events._sinks.append(recorded_sink)


@pytest.mark.parametrize("folded", [True, False], ids=["in-the-statement", "sink-called"])
def test_the_turns_events_are_the_rows_the_sink_writes(
    customer: User, request: pytest.FixtureRequest, folded: bool
) -> None:
    """The turn's message.created rows, written by its own statement (PostgreSQL, only the
    outbox listening) or by the sink in its transaction (SQLite, or a sink that can only be
    called): the same rows outbox_write writes for the events the general path records."""
    if not folded:
        seen = request.getfixturevalue("recorded_events")
    _endpoint()
    conversation = sent_directly(customer, ANSWERED)["conversation_id"]
    before = set(WebhookEvent.objects.values_list("id", flat=True))

    with CaptureQueriesContext(connection) as queries:
        written = _turn(customer, conversation)

    assert written is not None
    in_statement = folded and connection.vendor == "postgresql"
    statements = [q["sql"] for q in queries.captured_queries]
    if in_statement:
        (statement,) = statements
        assert 'INSERT INTO "integrations_webhookevent"' in statement
    else:
        assert statements[-1].startswith('INSERT INTO "integrations_webhookevent"')
    rows = list(WebhookEvent.objects.exclude(id__in=before).order_by("id"))
    expected = [
        {**message_payload(m), "conversation_id": conversation, "customer_id": customer.pk}
        for m in (written.customer_message, written.answer)
    ]
    assert [(r.type, r.payload, r.customer_id, r.dispatched_at) for r in rows] == [
        ("message.created", data, customer.pk, None) for data in expected
    ]
    assert [r.payload["seq"] for r in rows] == [written.last_seq - 1, written.last_seq]
    # One time for the change: the turn's own when its statement writes them, the sink's
    # clock when it is called.
    assert len({r.created_at for r in rows}) == 1
    if in_statement:
        assert rows[0].created_at == written.updated_at
    assert all(EVENT_ID.match(r.event_id) for r in rows)
    assert len({r.event_id for r in rows}) == 2
    if not folded:
        assert seen[-2:] == [("message.created", data) for data in expected]


def test_no_endpoint_the_turn_writes_no_event(customer: User) -> None:
    _endpoint(active=False)
    conversation = sent_directly(customer, ANSWERED)["conversation_id"]
    assert _turn(customer, conversation) is not None
    assert WebhookEvent.objects.count() == 0


def test_a_turn_that_does_not_qualify_writes_no_event(customer: User, operator: User) -> None:
    _endpoint()
    conversation = sent_directly(customer, HUMAN)["conversation_id"]  # escalated
    before = WebhookEvent.objects.count()
    assert _turn(customer, conversation) is None
    assert WebhookEvent.objects.count() == before


def test_the_turns_events_roll_back_with_it(customer: User) -> None:
    _endpoint()
    conversation = sent_directly(customer, ANSWERED)["conversation_id"]
    before = WebhookEvent.objects.count()
    last_seq = Conversation.objects.get(pk=conversation).last_seq
    seen_inside: list[int] = []

    def turn_then_fail() -> None:
        with transaction.atomic():
            assert _turn(customer, conversation) is not None
            seen_inside.append(WebhookEvent.objects.count())
            raise RuntimeError("the caller's transaction fails after the turn")

    with pytest.raises(RuntimeError):
        turn_then_fail()
    assert seen_inside == [before + 2]
    assert WebhookEvent.objects.count() == before
    assert Conversation.objects.get(pk=conversation).last_seq == last_seq


# --- Who hears of what ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "earlier_endpoint",
    [True, False],
    ids=["another-endpoint-before", "no-endpoint-before"],  # the event row written, or never
)
def test_an_endpoint_hears_only_of_what_happened_after_it_was_created(
    customer: User,
    receiver: Receiver,
    endpoint_for: Callable[..., Any],
    drain: Callable[[], None],
    earlier_endpoint: bool,
) -> None:
    if earlier_endpoint:
        endpoint_for(receiver.url("/first"), events=("conversation.created",))
    before = sent_directly(customer, ANSWERED)["conversation_id"]
    endpoint_for(receiver.url("/second"), events=("conversation.created",))
    after = sent_directly(customer, ANSWERED)["conversation_id"]
    drain()
    assert before != after
    first = [e["data"]["conversation_id"] for e in receiver.events("/first")]
    second = [e["data"]["conversation_id"] for e in receiver.events("/second")]
    assert (first, second) == ([before, after] if earlier_endpoint else [], [after])


# --- The sweeper's pace -------------------------------------------------------------------------


def _undispatched(count: int, *, event_type: str = "conversation.created") -> None:
    now = timezone.now()
    WebhookEvent.objects.bulk_create(
        WebhookEvent(type=event_type, payload={"n": n}, created_at=now + timedelta(microseconds=n))
        for n in range(count)
    )


@pytest.fixture
def sweeps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """What each sweep returned (deliveries queued, full batch)."""
    seen: list[tuple[int, bool]] = []
    real = delivery._sweep

    def counting(*, now: datetime) -> tuple[int, bool]:
        result = real(now=now)
        seen.append(result)
        return result

    monkeypatch.setattr(delivery, "_sweep", counting)
    return seen


def test_one_tick_works_off_a_backlog_larger_than_a_batch(
    sweeps: list[tuple[int, bool]],
) -> None:
    endpoint = WebhookEndpoint.objects.create(
        url="https://hooks.example.com/in",
        events=["conversation.created"],
        secret="whsec_x",
        created_at=timezone.now() - timedelta(minutes=1),
    )
    _undispatched(450)
    assert webhook_outbox_sweep_until_caught_up() == 450
    assert sweeps == [(SWEEP_BATCH, True), (SWEEP_BATCH, True), (50, False)]
    assert not WebhookEvent.objects.filter(dispatched_at__isnull=True).exists()
    assert WebhookDelivery.objects.filter(endpoint=endpoint, status="pending").count() == 450


def test_a_tick_ends_when_nobody_listens(sweeps: list[tuple[int, bool]]) -> None:
    # Rows written while an endpoint existed, which has gone since: dispatched to nobody.
    _undispatched(450)
    assert webhook_outbox_sweep_until_caught_up() == 0
    assert sweeps == [(0, True), (0, True), (0, False)]
    assert not WebhookEvent.objects.filter(dispatched_at__isnull=True).exists()
    assert not WebhookDelivery.objects.exists()


def test_a_tick_ends_when_everything_is_dispatched(sweeps: list[tuple[int, bool]]) -> None:
    _endpoint()
    assert webhook_outbox_sweep_until_caught_up() == 0
    assert sweeps == [(0, False)]
    # Exactly one full batch: the next sweep finds nothing left and the tick ends there.
    _undispatched(SWEEP_BATCH)
    assert webhook_outbox_sweep_until_caught_up() == SWEEP_BATCH
    assert sweeps[1:] == [(SWEEP_BATCH, True), (0, False)]
    assert webhook_outbox_sweep_until_caught_up() == 0
    assert sweeps[3:] == [(0, False)]


def test_a_tick_stops_when_the_worker_stops(sweeps: list[tuple[int, bool]]) -> None:
    _undispatched(450)
    stop = threading.Event()
    stop.set()
    webhook_outbox_sweep_until_caught_up(stop=stop)
    assert len(sweeps) == 1
    assert WebhookEvent.objects.filter(dispatched_at__isnull=True).count() == 250


def test_the_sweeper_thread_waits_only_after_a_partial_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[float] = []

    def fake_sweep(*, now: datetime) -> tuple[int, bool]:
        calls.append(time.monotonic())
        return 0, len(calls) <= 3  # three full batches, then caught up

    monkeypatch.setattr(delivery, "_sweep", fake_sweep)
    stop = threading.Event()
    thread = delivery.sweeper_thread_start(interval=60, stop=stop)
    try:
        deadline = time.monotonic() + 10
        while len(calls) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        # Four sweeps back to back, then the 60 s wait.
        assert len(calls) == 4
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_the_batch_worker_does_not_stop_at_a_batch_nobody_subscribes_to(
    customer: User,
    receiver: Receiver,
    endpoint_for: Callable[..., Any],
) -> None:
    """`run_worker --batch` (and the tests' drain) used to stop after a sweep that queued
    nothing, leaving the events behind a full batch of unsubscribed ones undispatched."""
    endpoint_for(receiver.url(), events=("conversation.created",))
    _undispatched(SWEEP_BATCH + 10, event_type="message.created")
    sent_directly(customer, ANSWERED)  # conversation.created, after them in the sweep's order
    worker_run_until_idle(worker_id="test-worker")
    assert [e["type"] for e in receiver.events()] == ["conversation.created"]
    assert not WebhookEvent.objects.filter(dispatched_at__isnull=True).exists()
