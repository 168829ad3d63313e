"""The worker as it runs in production: `manage.py run_worker` processes on the same database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django_tasks_db.models import DBTaskResult

from accounts.models import User
from integrations.delivery import WEBHOOK_QUEUE
from integrations.models import WebhookDelivery, WebhookEvent
from messaging.services import message_send
from tests.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]


def _worker(
    worker_id: str, *, queue: str = "database", stderr: int = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """`run_worker` on the test database, with the database queue (these tests read its table)
    or `queue="celery"` (tests/integrations/test_celery_queue.py)."""
    db = django_settings.DATABASES["default"]
    env = {
        **os.environ,
        "WEBHOOK_QUEUE": queue,
        # The test database, which this test's data is committed to.
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "WEBHOOK_ALLOW_PRIVATE_HOSTS": "1",
        "WEBHOOK_RETRY_BASE_SECONDS": "0",
        "DEBUG": "1",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_worker",
            "--worker-id",
            worker_id,
            "--interval",
            "0.05",
            "--sweep-interval",
            "0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="several workers share a queue on PostgreSQL"
)
@pytest.mark.django_db(transaction=True)
def test_two_workers_deliver_each_attempt_once(
    settings: Any, customer: User, receiver: Receiver, endpoint_for: Callable[..., Any]
) -> None:
    settings.RATE_LIMIT_MESSAGES = "1000/m"
    settings.RATE_LIMIT_CONVERSATIONS = "1000/h"  # 40 new conversations of one customer
    endpoint_for(receiver.url())
    receiver.answer("/hook", *([500] * 10))  # the first ten requests fail: retries race too
    for number in range(40):
        message_send(customer=customer, conversation_id=None, text=f"hello {number}")
    events = WebhookEvent.objects.count()
    assert events == 120  # 40 × (conversation.created + two message.created)

    workers = [_worker("worker-a"), _worker("worker-b")]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if WebhookDelivery.objects.filter(status="delivered").count() == events:
                break
            assert all(w.poll() is None for w in workers), "a worker exited"
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=20)

    assert WebhookDelivery.objects.filter(status="delivered").count() == events
    ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert len(ids) == events
    # Ten events were answered 500 once, so they arrived twice; every other exactly once.
    assert sorted(Counter(ids.values()).items()) == [(1, events - 10), (2, 10)]
    assert len(receiver.requests) == WebhookDelivery.objects.count() == events + 10
    # Both workers took part, and no attempt ran twice.
    by_worker = Counter(
        worker_id
        for ids_ in DBTaskResult.objects.values_list("worker_ids", flat=True)
        for worker_id in ids_
    )
    assert set(by_worker) == {"worker-a", "worker-b"}
    assert all(len(ids_) == 1 for ids_ in DBTaskResult.objects.values_list("worker_ids", flat=True))
    assert all(w.returncode == 0 for w in workers)


@pytest.mark.django_db
def test_run_worker_batch_delivers_what_is_due_and_exits(
    customer: User, receiver: Receiver, endpoint_for: Callable[..., Any]
) -> None:
    from django.core.management import call_command

    endpoint_for(receiver.url(), events=("conversation.created",))
    receiver.answer("/hook", 500)
    message_send(customer=customer, conversation_id=None, text="hello")
    call_command("run_worker", "--batch", "--worker-id", "batch-1")
    assert len(receiver.requests) == 2  # the failure and its (immediately due) retry
    assert list(WebhookDelivery.objects.order_by("attempt").values_list("status", flat=True)) == [
        "retrying",
        "delivered",
    ]
    assert all(
        ids == ["batch-1"] for ids in DBTaskResult.objects.values_list("worker_ids", flat=True)
    )


def _lines_of(stream: Any) -> list[str]:
    """The lines `stream` has written so far, read by a thread of their own until it closes."""
    lines: list[str] = []

    def read() -> None:
        for line in stream:
            lines.append(line.decode())

    threading.Thread(target=read, daemon=True).start()
    return lines


def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


NEEDS_REDIS = pytest.mark.skipif(not django_settings.REDIS_URL, reason="Celery's broker is Redis")


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the worker process shares the test database"
)
@pytest.mark.parametrize(
    "queue", ["database", pytest.param("celery", marks=[pytest.mark.celery_queue, NEEDS_REDIS])]
)
@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_the_attempt_in_flight_finish_and_record(
    request: pytest.FixtureRequest,
    queue: str,
    customer: User,
    receiver: Receiver,
    endpoint_for: Callable[..., Any],
) -> None:
    broker = request.getfixturevalue("broker") if queue == "celery" else None
    endpoint_for(receiver.url(), events=("conversation.created",))
    receiver.hold = threading.Event()  # the receiver answers only when the test says so
    message_send(customer=customer, conversation_id=None, text="hello")
    worker = _worker("stopping", queue=queue)
    log = _lines_of(worker.stderr)
    try:
        _until(lambda: len(receiver.requests) == 1, 30, "the attempt to reach the receiver")
        worker.send_signal(signal.SIGTERM)
        _until(lambda: any("shutting down gracefully" in line for line in log), 30, "the stop")
        # Told to stop with the attempt still waiting for its answer: it is not cut short.
        assert worker.poll() is None
        (delivery,) = WebhookDelivery.objects.all()
        assert delivery.status == "sending"
        receiver.hold.set()
        assert worker.wait(timeout=30) == 0
    finally:
        receiver.hold.set()
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    # The answer was recorded before the process exited.
    delivery.refresh_from_db()
    assert (delivery.status, delivery.status_code) == ("delivered", 200)
    if broker is not None:
        # Acknowledged too: a restart has nothing of it to hand out again.
        assert (broker.llen(WEBHOOK_QUEUE), broker.hlen("unacked")) == (0, 0)

    # After a restart the worker delivers what comes next, and sends nothing of it again.
    receiver.hold = None
    message_send(customer=customer, conversation_id=None, text="hello again")
    restarted = _worker("restarted", queue=queue, stderr=subprocess.DEVNULL)
    try:
        _until(
            lambda: WebhookDelivery.objects.filter(status="delivered").count() == 2,
            30,
            "the next event delivered",
        )
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=30) == 0
    ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert sorted(ids.values()) == [1, 1]
    assert WebhookDelivery.objects.count() == 2
