"""The Celery queue (WEBHOOK_QUEUE=celery, Redis as the broker): tasks published on commit only,
`run_after` kept, a task delivered twice sending once, a lost task re-queued by the sweep, and
`manage.py run_worker` as a Celery worker delivering what the sweep queued."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.models import User
from integrations import delivery as pipeline
from integrations.celery_queue import CeleryBackend
from integrations.delivery import STALE_AFTER, WEBHOOK_QUEUE, webhook_attempt
from integrations.models import WebhookDelivery, WebhookEvent
from messaging.services import message_send
from tests.cluster.test_shards import _settings_of
from tests.integrations.test_workers import _until, _worker
from tests.receiver import Receiver

pytestmark = [
    pytest.mark.celery_queue,
    pytest.mark.skipif(
        not django_settings.REDIS_URL or connection.vendor != "postgresql",
        reason="the Celery queue needs REDIS_URL, and its workers the PostgreSQL test database",
    ),
    pytest.mark.django_db(transaction=True),
]


def _waiting(broker: redis.Redis) -> list[int]:
    """Delivery ids of the tasks waiting in the broker's queue."""
    ids = []
    for raw in broker.lrange(WEBHOOK_QUEUE, 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        ids.append(args[1][0])
    return ids


@pytest.fixture
def worker() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        process = _worker(f"celery-{len(started)}", queue="celery")
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        process.wait(timeout=30)


@pytest.fixture
def swept_delivery(
    receiver: Receiver, endpoint_for: Callable[..., Any], customer: User, broker: redis.Redis
) -> WebhookDelivery:
    """One delivery the sweep queued on the broker (one new conversation, one endpoint for
    conversation.created at the receiver)."""
    endpoint_for(receiver.url(), events=("conversation.created",))
    message_send(customer=customer, conversation_id=None, text="hello")
    assert pipeline.webhook_outbox_sweep() == 1
    (delivery,) = WebhookDelivery.objects.all()
    return delivery


def test_the_settings_choose_celery_with_redis_url_and_the_database_without() -> None:
    with_redis = _settings_of({"REDIS_URL": "redis://127.0.0.1:6379/9"}, "s.TASKS['default']")
    assert with_redis.returncode == 0, with_redis.stderr
    assert "integrations.celery_queue.CeleryBackend" in with_redis.stdout
    chosen = _settings_of(
        {"REDIS_URL": "redis://127.0.0.1:6379/9", "WEBHOOK_QUEUE": "database"},
        "s.TASKS['default']['BACKEND']",
    )
    assert chosen.stdout.strip() == "django_tasks_db.DatabaseBackend"
    without = _settings_of({}, "s.TASKS['default']['BACKEND']")
    assert without.stdout.strip() == "django_tasks_db.DatabaseBackend"
    refused = _settings_of({"WEBHOOK_QUEUE": "celery"}, "1")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "Parley configuration error: WEBHOOK_QUEUE=celery needs REDIS_URL (the broker)"
    )


def test_a_task_is_published_on_commit_and_never_after_a_rollback(broker: redis.Redis) -> None:
    assert isinstance(webhook_attempt.get_backend(), CeleryBackend)

    def rolled_back() -> None:
        with transaction.atomic():
            webhook_attempt.enqueue(101)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        rolled_back()
    assert _waiting(broker) == []
    with transaction.atomic():
        webhook_attempt.enqueue(102)
        assert _waiting(broker) == []  # not before COMMIT
    assert _waiting(broker) == [102]
    assert DBTaskResult.objects.count() == 0  # nothing went to the database queue


def test_run_worker_delivers_what_the_sweep_queued_once(
    settings: Any,
    customer: User,
    receiver: Receiver,
    endpoint_for: Callable[..., Any],
    broker: redis.Redis,
    worker: Callable[[], subprocess.Popen[bytes]],
) -> None:
    settings.RATE_LIMIT_CONVERSATIONS = "1000/h"
    endpoint_for(receiver.url())
    receiver.answer("/hook", 500, 500)  # two attempts fail: their retries go through Celery too
    for number in range(10):
        message_send(customer=customer, conversation_id=None, text=f"hello {number}")
    events = WebhookEvent.objects.count()
    assert events == 30
    process = worker()
    _until(
        lambda: WebhookDelivery.objects.filter(status="delivered").count() == events,
        60,
        "every event delivered",
    )
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0  # a warm shutdown, not a crash
    ids = Counter(request.headers["webhook-id"] for request in receiver.requests)
    assert len(ids) == events
    assert sorted(Counter(ids.values()).items()) == [(1, events - 2), (2, 2)]
    assert WebhookDelivery.objects.count() == events + 2
    assert DBTaskResult.objects.count() == 0
    assert _waiting(broker) == []


def test_a_task_delivered_twice_sends_once(
    swept_delivery: WebhookDelivery,
    receiver: Receiver,
    broker: redis.Redis,
    worker: Callable[[], subprocess.Popen[bytes]],
) -> None:
    delivery = swept_delivery
    webhook_attempt.enqueue(delivery.pk)  # the same delivery handed to the broker again
    assert _waiting(broker) == [delivery.pk, delivery.pk]
    process = worker()
    _until(lambda: WebhookDelivery.objects.get().status == "delivered", 30, "delivered")
    # Both tasks ran and were acknowledged (acks_late: only once run)...
    _until(lambda: _waiting(broker) == [] and broker.hlen("unacked") == 0, 30, "both tasks done")
    # ...which a warm shutdown confirms: a task taken but not run would be handed back.
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert (_waiting(broker), broker.hlen("unacked")) == ([], 0)
    assert len(receiver.requests) == 1


def test_run_after_is_kept(
    receiver: Receiver,
    endpoint_for: Callable[..., Any],
    customer: User,
    broker: redis.Redis,
    worker: Callable[[], subprocess.Popen[bytes]],
) -> None:
    endpoint, _ = endpoint_for(receiver.url(), events=("conversation.created",))
    message_send(customer=customer, conversation_id=None, text="hello")
    event = WebhookEvent.objects.get(type="conversation.created")
    due = timezone.now() + timedelta(seconds=3)
    with transaction.atomic():
        later = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event=event,
            attempt=1,
            next_attempt_at=due,
            lease_until=due + STALE_AFTER,
            created_at=timezone.now(),
        )
        pipeline._enqueue(later)
    WebhookEvent.objects.update(dispatched_at=timezone.now())  # the sweep has nothing to add
    worker()
    _until(lambda: WebhookDelivery.objects.get().status == "delivered", 30, "delivered")
    attempted = WebhookDelivery.objects.get().attempted_at
    assert attempted is not None
    assert attempted >= due
    (request,) = receiver.requests
    assert int(request.headers["webhook-timestamp"]) >= int(due.timestamp())


def test_a_lost_task_is_queued_again_by_the_sweep_and_delivered_once(
    swept_delivery: WebhookDelivery,
    receiver: Receiver,
    broker: redis.Redis,
    worker: Callable[[], subprocess.Popen[bytes]],
) -> None:
    delivery = swept_delivery
    broker.delete(WEBHOOK_QUEUE)  # the task is lost (a flushed Redis)
    due = delivery.next_attempt_at
    # Not yet: the row's lease has not run out.
    assert pipeline.webhook_outbox_sweep(now=due + STALE_AFTER / 2) == 0
    first = due + STALE_AFTER + timedelta(seconds=10)
    assert pipeline.webhook_outbox_sweep(now=first) == 1
    assert _waiting(broker) == [delivery.pk]
    # The task may only be waiting behind a backlog: the next re-queue waits as long again as
    # the row had waited, not STALE_AFTER, and the due time is kept.
    delivery.refresh_from_db()
    assert (delivery.next_attempt_at, delivery.lease_until) == (due, first + (first - due))
    assert pipeline.webhook_outbox_sweep(now=first + STALE_AFTER + timedelta(seconds=1)) == 0
    assert _waiting(broker) == [delivery.pk]
    worker()
    _until(lambda: WebhookDelivery.objects.get().status == "delivered", 30, "delivered")
    _until(lambda: _waiting(broker) == [], 10, "the queue empty")
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.count() == 1


def test_run_worker_batch_takes_due_tasks_from_the_broker(
    receiver: Receiver,
    endpoint_for: Callable[..., Any],
    customer: User,
    broker: redis.Redis,
) -> None:
    from django.core.management import call_command

    endpoint, _ = endpoint_for(receiver.url(), events=("conversation.created",))
    message_send(customer=customer, conversation_id=None, text="hello")
    due = timezone.now() + timedelta(hours=1)
    with transaction.atomic():
        later = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event=WebhookEvent.objects.get(type="conversation.created"),
            attempt=5,
            next_attempt_at=due,
            lease_until=due + STALE_AFTER,
            created_at=timezone.now(),
        )
        pipeline._enqueue(later)
    call_command("run_worker", "--batch", "--worker-id", "batch-celery")
    assert len(receiver.requests) == 1  # the sweep's delivery, not the one due in an hour
    assert _waiting(broker) == [later.pk]  # put back for a worker to run when due
    assert WebhookDelivery.objects.get(pk=later.pk).status == "pending"
