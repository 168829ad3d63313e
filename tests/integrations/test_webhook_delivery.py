"""Webhooks end to end: real services write the outbox, the worker delivers to a real HTTP
receiver on 127.0.0.1, receivers verify with the `standardwebhooks` library."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from standardwebhooks import Webhook

from accounts.models import User
from escalations import services as escalation_services
from integrations.delivery import webhook_outbox_sweep
from integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from messaging import idempotency
from messaging.events import EVENT_TYPES, RATING_CREATED, domain_event_record
from messaging.models import Conversation, Message
from messaging.services import message_send
from tests.integrations.scenarios import HUMAN, delivery_queued, escalation_lifecycle
from tests.messages import sent_directly
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db


def test_deliveries_are_signed_and_verify_with_standardwebhooks(
    customer: User,
    receiver: Receiver,
    endpoint_for: Callable[..., Any],
    drain: Any,
    customer_client: Any,
) -> None:
    endpoint, secret = endpoint_for(receiver.url())
    body = sent_directly(customer, "hello there")
    drain()

    assert len(receiver.requests) == 3  # conversation.created + customer + agent messages
    verifier = Webhook(secret)
    for request in receiver.requests:
        payload = verifier.verify(request.body, request.headers)
        assert request.headers["webhook-id"] == payload["id"]
        assert {k.lower(): v for k, v in request.headers.items()}[
            "content-type"
        ] == "application/json"
    created, customer_message, agent_message = (r.json for r in receiver.requests[:3])
    assert created["type"] == "conversation.created"
    assert created["data"]["conversation_id"] == body["conversation_id"]
    assert created["data"]["customer_id"] == customer.pk
    assert customer_message["type"] == "message.created"
    message = Message.objects.get(conversation_id=body["conversation_id"], seq=1)
    assert customer_message["data"] == {
        "id": message.pk,
        "seq": 1,
        "role": "customer",
        "content": "hello there",
        "intent": message.intent,
        "confidence": message.confidence,
        "created_at": customer_message["data"]["created_at"],
        "author_name": None,
        "conversation_id": body["conversation_id"],
        "customer_id": customer.pk,
    }
    # Encoded like the API's own items.
    (listed,) = customer_client.get("/api/v1/conversations").json()["items"]
    assert created["data"]["created_at"] == listed["created_at"]
    history = customer_client.get(f"/api/v1/conversations/{listed['id']}/history").json()
    assert customer_message["data"]["created_at"] == history["messages"][0]["created_at"]
    assert agent_message["data"]["role"] == "agent"
    assert agent_message["data"]["id"] == body["message_id"]
    # Each body carries the event's own time, the header the attempt's.
    assert set(created) == {"id", "type", "timestamp", "data"}
    assert created["timestamp"].endswith("Z")


def test_a_tampered_body_fails_verification(
    customer: User, receiver: Receiver, endpoint_for: Callable[..., Any], drain: Any
) -> None:
    _endpoint, secret = endpoint_for(receiver.url(), events=("conversation.created",))
    sent_directly(customer, "hello there")
    drain()
    (request,) = receiver.requests
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(secret).verify(
            request.body.replace(b"conversation", b"Conversation"), request.headers
        )
    other_secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(other_secret).verify(request.body, request.headers)


def test_every_event_type_arrives(
    customer: User,
    operator: User,
    receiver: Receiver,
    endpoint_for: Callable[..., Any],
    drain: Any,
) -> None:
    endpoint_for(receiver.url())
    conversation_id = escalation_lifecycle(customer, operator)
    # rating.created is written by the ratings service (messaging.Rating); the sink must take
    # it like any other event.
    with transaction.atomic():
        domain_event_record(
            RATING_CREATED,
            {"conversation_id": conversation_id, "customer_id": customer.pk, "score": 5},
        )
    drain()

    types = [event["type"] for event in receiver.events()]
    assert set(types) == set(EVENT_TYPES)
    roles = [e["data"]["role"] for e in receiver.events() if e["type"] == "message.created"]
    assert sorted(set(roles)) == ["agent", "customer", "operator", "system"]
    # Every message of the transcript produced exactly one event, in seq order.
    seqs = [e["data"]["seq"] for e in receiver.events() if e["type"] == "message.created"]
    last_seq = Conversation.objects.get(pk=conversation_id).last_seq
    assert seqs == list(range(1, last_seq + 1))
    assert types.count("escalation.opened") == 1
    assert types.count("escalation.assigned") == 1
    assert types.count("escalation.resolved") == 1
    breached = next(e for e in receiver.events() if e["type"] == "escalation.sla_breached")
    assert (breached["data"]["breach"], breached["data"]["sla_breached"]) == (
        "first_response",
        ["first_response"],
    )
    opened = next(e for e in receiver.events() if e["type"] == "escalation.opened")
    assert opened["data"]["conversation_id"] == conversation_id
    assert opened["data"]["customer_id"] == customer.pk
    assert opened["data"]["status"] == "open"


def test_an_endpoint_gets_only_its_event_types(
    customer: User, receiver: Receiver, endpoint_for: Callable[..., Any], drain: Any
) -> None:
    endpoint_for(receiver.url("/convs"), events=("conversation.created",))
    endpoint_for(receiver.url("/msgs"), events=("message.created",))
    sent_directly(customer, "hello there")
    drain()
    assert [e["type"] for e in receiver.events("/convs")] == ["conversation.created"]
    assert [e["type"] for e in receiver.events("/msgs")] == ["message.created"] * 2


@pytest.fixture
def attempts(
    customer: User, receiver: Receiver, conversation_hook: WebhookEndpoint, drain: Any
) -> Callable[..., list[WebhookDelivery]]:
    """attempts(*answers): the receiver answers so (then 200), a new conversation's event goes
    out until the worker is idle; the endpoint's delivery rows, by attempt."""

    def run(*answers: int | tuple[int, dict[str, str]]) -> list[WebhookDelivery]:
        receiver.answer("/hook", *answers)
        sent_directly(customer, "hello there")
        drain()
        return list(WebhookDelivery.objects.filter(endpoint=conversation_hook).order_by("attempt"))

    return run


def test_a_failing_receiver_gets_the_same_event_id_until_it_succeeds(
    receiver: Receiver, attempts: Callable[..., list[WebhookDelivery]]
) -> None:
    rows = attempts(500, 503, 200)

    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 3
    assert len(set(ids)) == 1
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1  # the same bytes every time
    assert [(r.attempt, r.status, r.status_code, r.error, r.delivered) for r in rows] == [
        (1, "retrying", 500, "HTTP 500", False),
        (2, "retrying", 503, "HTTP 503", False),
        (3, "delivered", 200, "", True),
    ]


def test_backoff_is_exponential(
    settings: Any, receiver: Receiver, attempts: Callable[..., list[WebhookDelivery]]
) -> None:
    from integrations.delivery import webhook_attempt_run

    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    # Attempt 1 fails; attempt 2 is due in 30 s, so the drain stops there.
    first, second = attempts(500, 500)
    assert len(receiver.requests) == 1
    assert second.status == "pending"
    delay = (second.next_attempt_at - first.attempted_at).total_seconds()
    assert 30 <= delay < 32
    # Attempt 2 failing schedules attempt 3 twice as far out.
    WebhookDelivery.objects.filter(pk=second.pk).update(next_attempt_at=first.attempted_at)
    webhook_attempt_run(second.pk)
    third = WebhookDelivery.objects.get(endpoint=second.endpoint_id, attempt=3)
    second.refresh_from_db()
    assert 60 <= (third.next_attempt_at - second.attempted_at).total_seconds() < 62


def test_gives_up_after_max_attempts(
    settings: Any, receiver: Receiver, attempts: Callable[..., list[WebhookDelivery]]
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    rows = attempts(500, 500, 500, 200)
    assert len(receiver.requests) == 3
    assert [r.status for r in rows] == ["retrying", "retrying", "failed"]


def test_redirects_are_recorded_as_failures_and_never_followed(
    settings: Any, receiver: Receiver, attempts: Callable[..., list[WebhookDelivery]]
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    rows = attempts(
        (302, {"Location": receiver.url("/elsewhere")}), (302, {"Location": "/elsewhere"})
    )
    assert [r.path for r in receiver.requests] == ["/hook", "/hook"]
    assert [(r.status, r.status_code, r.delivered) for r in rows] == [
        ("retrying", 302, False),
        ("failed", 302, False),
    ]
    assert "redirects are not followed" in rows[0].error


def test_timeouts_and_connection_errors_are_retried(
    settings: Any, customer: User, endpoint_for: Callable[..., Any], drain: Any
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    # A port nobody listens on: connection refused.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    endpoint, _ = endpoint_for(f"http://127.0.0.1:{port}/hook", events=("conversation.created",))
    sent_directly(customer, "hello there")
    drain()
    attempts = list(
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .order_by("attempt")
        .values_list("status", "status_code", "error")
    )
    assert attempts == [
        ("retrying", None, "Connection failed (ConnectError)"),
        ("failed", None, "Connection failed (ConnectError)"),
    ]


@contextlib.contextmanager
def _tcp_listener(on_connection: Callable[[socket.socket], None]) -> Iterator[str]:
    """A bare TCP server on 127.0.0.1 handing each connection to `on_connection` and holding
    it open until the block ends: the /hook URL on it (for receivers http.server cannot be)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.1)  # so the accepting thread sees `stop`
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn = listener.accept()[0]
            except OSError:
                continue
            held.append(conn)
            on_connection(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    settings: Any, customer: User, endpoint_for: Callable[..., Any], drain: Any
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    with _tcp_listener(lambda conn: None) as url:  # accepts the connection, never answers
        endpoint, _ = endpoint_for(url, events=("conversation.created",))
        sent_directly(customer, "hello there")
        started = time.monotonic()
        drain()
        assert time.monotonic() - started < 5
    (delivery,) = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert (delivery.status, delivery.error) == ("failed", "Timed out after 0.3 s")


def test_a_rolled_back_change_produces_no_event(
    customer: User,
    receiver: Receiver,
    endpoint_for: Callable[..., Any],
    drain: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint_for(receiver.url())

    def fail(**kwargs: Any) -> None:
        raise RuntimeError("crash after the messages were written")

    monkeypatch.setattr(idempotency, "idempotency_complete", fail)
    with pytest.raises(RuntimeError):
        message_send(customer=customer, conversation_id=None, text="hello", idempotency_key="k1")
    assert Conversation.objects.count() == 0
    assert WebhookEvent.objects.count() == 0
    drain()
    assert receiver.requests == []


def test_a_committed_event_survives_a_worker_that_never_ran(
    customer: User, receiver: Receiver, conversation_hook: WebhookEndpoint, drain: Any
) -> None:
    """Crash between commit and delivery: nothing lives in memory, the outbox row is enough."""
    sent_directly(customer, "hello there")
    # The process that committed is gone; a fresh worker starts from the database alone.
    event = WebhookEvent.objects.get(type="conversation.created")
    assert event.dispatched_at is None
    drain()
    assert [r.headers["webhook-id"] for r in receiver.requests] == [event.event_id]


def test_an_attempt_whose_worker_died_is_sent_again(
    customer: User, receiver: Receiver, conversation_hook: WebhookEndpoint, drain: Any
) -> None:
    """A worker claimed the attempt and died mid-request: its task row is stuck. Once the claim
    expires the sweeper queues the attempt again."""
    delivery = delivery_queued(customer, conversation_hook)
    # Simulate the dead worker: the row is claimed, its task marked running forever.
    past = timezone.now() - timedelta(minutes=5)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="sending", claim_token="dead", lease_until=past
    )
    DBTaskResult.objects.update(status="RUNNING")
    drain()
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt, delivery.delivered) == ("delivered", 1, True)


def test_a_duplicate_task_sends_the_attempt_once(
    customer: User, receiver: Receiver, conversation_hook: WebhookEndpoint, drain: Any
) -> None:
    from integrations.tasks import webhook_attempt

    delivery = delivery_queued(customer, conversation_hook)
    webhook_attempt.enqueue(delivery.pk)  # the same attempt queued twice
    drain()
    assert len(receiver.requests) == 1


def test_an_endpoint_does_not_get_events_from_before_it_existed(
    customer: User, receiver: Receiver, endpoint_for: Callable[..., Any], drain: Any
) -> None:
    sent_directly(customer, "before")
    endpoint_for(receiver.url(), events=("conversation.created",))
    drain()
    assert receiver.requests == []
    assert WebhookEvent.objects.filter(dispatched_at__isnull=True).count() == 0


def test_a_deleted_endpoint_gets_nothing_more(
    customer: User, receiver: Receiver, conversation_hook: WebhookEndpoint, drain: Any
) -> None:
    from integrations.services import webhook_endpoint_delete

    delivery_queued(customer, conversation_hook)
    webhook_endpoint_delete(endpoint_id=conversation_hook.pk)
    drain()
    assert receiver.requests == []
    assert not WebhookEndpoint.objects.exists()


def test_redeliver_sends_the_event_again_with_its_id(
    customer: User, receiver: Receiver, conversation_hook: WebhookEndpoint, drain: Any
) -> None:
    from integrations.services import webhook_deliveries_redeliver

    endpoint = conversation_hook
    delivery = delivery_queued(customer, endpoint)
    drain()
    assert webhook_deliveries_redeliver(delivery_ids=[delivery.pk, delivery.pk]) == 1
    drain()
    assert len(receiver.requests) == 2
    assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]
    assert list(
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .order_by("attempt")
        .values_list("attempt", "status")
    ) == [(1, "delivered"), (2, "delivered")]


def test_internal_notes_produce_no_event(
    customer: User, operator: User, receiver: Receiver, endpoint_for: Callable[..., Any]
) -> None:
    endpoint_for(receiver.url())
    body = sent_directly(customer, HUMAN)
    before = WebhookEvent.objects.count()
    from escalations.inbox import note_add

    note_add(conversation_id=body["conversation_id"], actor=operator, text="internal only")
    assert WebhookEvent.objects.count() == before
    # The same door does produce events for a message, so the count above can move.
    escalation_services.escalation_reply(
        conversation_id=body["conversation_id"], actor=operator, text="Hi"
    )
    assert WebhookEvent.objects.count() > before


def test_the_outbox_costs_one_insert_per_change(
    customer: User, endpoint_for: Callable[..., Any]
) -> None:
    """The hot path pays one statement for its events: the turn's messages go in one bulk
    insert (a new conversation adds its conversation.created)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    endpoint_for("http://127.0.0.1:9/hook")

    def outbox_inserts(conversation_id: int | None) -> int:
        with CaptureQueriesContext(connection) as queries:
            message_send(customer=customer, conversation_id=conversation_id, text="hi")
        return sum(
            'INSERT INTO "integrations_webhookevent"' in q["sql"] for q in queries.captured_queries
        )

    assert outbox_inserts(None) == 2
    conversation = Conversation.objects.get()
    assert outbox_inserts(conversation.pk) == 1
    assert WebhookEvent.objects.count() == 5


def test_history_prune_keeps_recent_and_unfinished(
    customer: User, receiver: Receiver, conversation_hook: WebhookEndpoint, drain: Any
) -> None:
    from integrations.delivery import webhook_attempt_run, webhook_history_prune

    delivered = sent_directly(customer, "old and delivered")["conversation_id"]
    drain()
    receiver.answer("/hook", 500)
    retrying = sent_directly(customer, "old and still retrying")["conversation_id"]
    webhook_outbox_sweep()
    webhook_attempt_run(WebhookDelivery.objects.get(status="pending").pk)  # attempt 2 pending
    recent = sent_directly(customer, "recent")["conversation_id"]
    now = timezone.now()
    WebhookEvent.objects.exclude(payload__conversation_id=recent).update(
        created_at=now - timedelta(days=40)
    )
    webhook_outbox_sweep()

    # Old and finished: conversation.created + two message.created of the first turn, and
    # the two message.created of the second (never subscribed, so nothing pending).
    assert webhook_history_prune(now=now, keep_days=30) == 5
    left = WebhookEvent.objects.values_list("type", "payload__conversation_id")
    assert sorted(left) == sorted(
        [
            ("conversation.created", retrying),
            ("conversation.created", recent),
            ("message.created", recent),
            ("message.created", recent),
        ]
    )
    assert not WebhookEvent.objects.filter(payload__conversation_id=delivered).exists()


def test_the_response_body_is_never_read(
    settings: Any, customer: User, endpoint_for: Callable[..., Any], drain: Any
) -> None:
    """A receiver that answers 200 and then promises an endless body does not hold the
    attempt: only the status line and headers are read."""
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    settings.WEBHOOK_TIMEOUT_SECONDS = 1

    def answer(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\npartial")

    with _tcp_listener(answer) as url:
        endpoint, _ = endpoint_for(url, events=("conversation.created",))
        sent_directly(customer, "hello there")
        drain()
    (delivery,) = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert (delivery.status, delivery.status_code, delivery.error) == ("delivered", 200, "")


def test_the_sweeper_never_duplicates_a_task_still_in_the_queue(
    customer: User, receiver: Receiver, conversation_hook: WebhookEndpoint, drain: Any
) -> None:
    """A long queue is not a lost task: the sweeper re-queues only when the attempt's task is
    gone (or finished without sending), so a backlog is not multiplied every minute."""
    delivery = delivery_queued(customer, conversation_hook)
    (task,) = DBTaskResult.objects.all()
    assert delivery.task_id == str(task.id)
    past = timezone.now() - timedelta(minutes=5)

    WebhookDelivery.objects.filter(pk=delivery.pk).update(lease_until=past)
    assert webhook_outbox_sweep() == 0
    assert DBTaskResult.objects.count() == 1
    delivery.refresh_from_db()
    assert delivery.lease_until > timezone.now()

    # The task row vanished (e.g. pruned by hand): now the attempt is queued again.
    DBTaskResult.objects.all().delete()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(lease_until=past)
    assert webhook_outbox_sweep() == 1
    (requeued,) = DBTaskResult.objects.all()
    delivery.refresh_from_db()
    assert delivery.task_id == str(requeued.id)
    drain()
    assert len(receiver.requests) == 1
