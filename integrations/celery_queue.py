"""The webhook queue on Celery 5 with Redis as the broker, behind django-tasks' interface.

`CeleryBackend` is a django-tasks backend (settings.TASKS, chosen by `WEBHOOK_QUEUE=celery`):
`webhook_attempt.using(run_after=...).enqueue(delivery.pk)` does not change. It hands Celery
one generic task, "parley.task", carrying the django-tasks task's import path and arguments,
and only once the enqueuing transaction commits, so a worker never meets a delivery row that
is not (or never will be) committed; `run_after` becomes Celery's `eta`.

Why our own class: the PyPI package `django-tasks-celery` (0.1.1) is not installable from the
registry here and targets Django 6's `django.tasks`, not django-tasks 0.12; what is needed is
small. The broker is not the source of truth -- the delivery rows are: a task delivered twice
sends once (the claim in integrations.delivery), a task lost (a flushed queue, a publish that
met a Redis outage) is re-queued by the outbox sweep once its row's lease runs out. So a
publish that fails is logged and left to the sweep instead of failing the transaction that
already committed.

`celery_worker_run` is what `manage.py run_worker` runs with this backend (integrations.worker):
a thread pool (`WEBHOOK_WORKER_THREADS` attempts in flight per process, one prefetched task
per thread, `acks_late`), the broker connection retried forever, SIGTERM a warm shutdown.
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from datetime import datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from celery import Celery, signals
from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import Task, TaskResult, TaskResultStatus
from django_tasks.utils import normalize_json
from kombu.exceptions import OperationalError as BrokerUnavailable
from typing_extensions import ParamSpec

from core.outages import (
    CACHE,
    CHANNEL_LAYER,
    dependency_of,
    outage_met,
    outage_recovery_hook_register,
    outage_report,
    outage_wait,
)

logger = logging.getLogger("parley.webhooks")

T = TypeVar("T")
P = ParamSpec("P")

CELERY_TASK_NAME = "parley.task"
# A publish during a Redis outage gives up after about this long (the sweep re-queues the
# delivery later); a sweep or a recording attempt must not hang on the broker.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.4}

# Set by the worker's warm shutdown: a task waiting out a database outage stops waiting.
_stopping = threading.Event()
# Set when the consumer lost its broker connection; once Redis answers again the worker stops
# (warm) and `celery_worker_run` says so: a fresh process consumes instead (see below).
_broker_lost = threading.Event()
_restart_for_broker = threading.Event()


def visibility_timeout() -> float:
    """Seconds Redis lets a delivered, unacknowledged task wait before handing it out again.
    Longer than an attempt can take (WEBHOOK_TIMEOUT_SECONDS + the claim margin), and longer
    than the longest retry delay: Celery keeps a task with an `eta` reserved, unacknowledged,
    until it is due, and a shorter timeout would hand every such task out again and again.
    A task whose worker died is not waiting for this: the sweep re-queues its delivery once
    the row's lease ends."""
    from integrations.delivery import CLAIM_MARGIN, STALE_AFTER, retry_delay

    longest_wait = retry_delay(max(1, settings.WEBHOOK_MAX_ATTEMPTS - 1))
    attempt = timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS) + CLAIM_MARGIN
    return (longest_wait + attempt + STALE_AFTER).total_seconds()


@cache
def celery_app(broker_url: str) -> Celery:
    """The process's Celery app for `broker_url` (one per URL: tests override settings)."""
    app = Celery("parley", broker=broker_url, set_as_current=False)
    app.conf.update(
        # Deliveries carry only a delivery id; results live on the delivery rows.
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # A task is acknowledged when it has run, not when it is received: a worker killed
        # mid-attempt leaves it to be handed out again (and the sweep re-queues the row anyway).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": visibility_timeout(),
            "socket_timeout": settings.REDIS_SOCKET_TIMEOUT * 5,
            "socket_connect_timeout": settings.REDIS_SOCKET_TIMEOUT * 5,
        },
        # A Redis outage is waited out, never fatal: retry the connection forever.
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # Parley's own logging stays as configured (config/settings.py LOGGING).
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # No remote control, events or gossip: nothing here uses them, and each is Redis
        # traffic (pub/sub, fan-out keys) per worker.
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        timezone="UTC",
        enable_utc=True,
    )
    app.task(name=CELERY_TASK_NAME, bind=False, acks_late=True)(task_execute)
    return app


def current_app() -> Celery:
    return celery_app(settings.REDIS_URL)


def task_execute(task_path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Run one django-tasks task in a Celery worker thread. An outage of the database or Redis
    met inside it is waited out here (the thread holds its task meanwhile), then the attempt it
    cut short is handed back to the sweep (integrations.delivery), as the database worker does
    (integrations.worker); the task itself then ends, acknowledged."""
    from integrations.delivery import (
        webhook_attempts_interrupted,
        webhook_attempts_interrupted_requeue,
    )

    task: Task = import_string(task_path)
    close_old_connections()
    try:
        return normalize_json(task.call(*args, **kwargs))
    except Exception as exc:
        dependency = outage_met(exc)
        if dependency is None:
            raise
        while not _stopping.is_set() and not outage_wait(dependency, timeout=0.5):
            pass
        return "interrupted"
    finally:
        if webhook_attempts_interrupted():
            try:
                webhook_attempts_interrupted_requeue()
            except Exception as exc:
                # Still unavailable (a shutdown during the outage): the row's lease hands the
                # attempt back to the sweep instead.
                if dependency_of(exc) is None:
                    raise
                connections.close_all()
        close_old_connections()


def _publish(app: Celery, task_result: TaskResult, run_after: datetime | None) -> None:
    try:
        app.send_task(
            CELERY_TASK_NAME,
            args=[task_result.task.module_path, list(task_result.args), task_result.kwargs],
            task_id=task_result.id,
            queue=task_result.task.queue_name,
            eta=run_after,
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
        )
    except Exception as exc:  # noqa: BLE001 - the committed delivery row stays the truth
        logger.warning(
            "could not queue task %s (%s): the sweep re-queues it later",
            task_result.id,
            type(exc).__name__,
        )


class CeleryBackend(BaseTaskBackend):
    """django-tasks backend that publishes tasks to Celery once the transaction commits."""

    supports_defer = True

    def enqueue(
        self,
        task: Task[P, T],
        args: P.args,  # type:ignore[valid-type]
        kwargs: P.kwargs,  # type:ignore[valid-type]
    ) -> TaskResult[T]:
        self.validate_task(task)
        task_result: TaskResult[T] = TaskResult(
            task=task,
            id=uuid.uuid4().hex,
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=normalize_json(args),
            kwargs=normalize_json(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        app = current_app()
        # Outside a transaction this publishes at once; inside, after COMMIT, and never after a
        # rollback.
        transaction.on_commit(lambda: _publish(app, task_result, task.run_after))
        return task_result


def celery_run_due(*, queue: str) -> int:
    """Run, in this thread, every task in `queue` that is due, and acknowledge it; put the
    others back. `run_worker --batch` with this backend (the database backend's equivalent
    claims and runs due rows, integrations.delivery). Returns how many ran."""
    from kombu.simple import SimpleQueue

    app = current_app()
    ran = 0
    now = timezone.now()
    not_due = []
    with app.connection_for_read() as connection:
        waiting = SimpleQueue(connection, queue)
        try:
            while True:
                try:
                    message = waiting.get(block=False)
                except waiting.Empty:
                    break
                eta = message.headers.get("eta")
                if eta and datetime.fromisoformat(eta) > now:
                    not_due.append(message)
                    continue
                task_args, _, _ = message.decode()
                try:
                    task_execute(*task_args)
                except Exception:
                    logger.exception("task %s failed", message.headers.get("id"))
                message.ack()
                ran += 1
        finally:
            for message in not_due:
                message.requeue()
            waiting.close()
    return ran


# --- The worker -------------------------------------------------------------------------------


@signals.worker_shutting_down.connect
def _on_shutting_down(*, sig: str = "", **_: Any) -> None:
    # Worded as django-tasks-db's worker says it: either queue's worker announces a stop alike.
    # A warm shutdown lets the attempts in flight finish and record (the thread pool is shut
    # down waiting for them) before the process exits.
    logger.warning("Received %s - shutting down gracefully, attempts in flight finish first", sig)
    _stopping.set()


class _BrokerOutageFilter(logging.Filter):
    """Celery's consumer logs every failed reconnection to the broker as an ERROR; a Redis
    restart is an outage like any other (core.outages): reported once, with its end, and the
    consumer's own lines about it dropped. Its other lines pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if not isinstance(arg, BaseException):
                continue
            if isinstance(arg, BrokerUnavailable | OSError) or dependency_of(arg) in {
                CACHE,
                CHANNEL_LAYER,
            }:
                # The broker is REDIS_URL's Redis, the cache's: reported (and watched) as such.
                _broker_lost.set()
                outage_report(CACHE, arg)
                return False
        return True


def _after_broker_outage() -> None:
    """Once Redis answers again after the consumer lost it: a warm shutdown of this worker,
    and `celery_worker_run` reports that it ended for a restart. Celery's thread-pool
    consumer can reconnect and then never consume again (celery/celery#8030, #10302; seen in
    CI: 111 deliveries re-queued after a Redis restart, none taken for 90 s); a fresh consumer
    does not depend on that reconnection."""
    if _broker_lost.is_set() and not _stopping.is_set():
        _broker_lost.clear()
        _restart_for_broker.set()
        logger.warning("the broker is back: restarting the webhook worker's consumer")
        signal.raise_signal(signal.SIGTERM)  # Celery's own warm shutdown, in the main thread


def celery_worker_run(*, worker_id: str, queues: list[str], threads: int) -> bool:
    """Run a Celery worker in this process until SIGTERM/SIGINT (a warm shutdown: attempts in
    flight finish, then it exits), or until the broker came back from an outage. Returns True
    in the second case: the caller starts a fresh worker process (integrations.worker)."""
    _stopping.clear()
    _broker_lost.clear()
    _restart_for_broker.clear()
    logging.getLogger("celery.worker.consumer.consumer").addFilter(_BrokerOutageFilter())
    outage_recovery_hook_register(CACHE, _after_broker_outage)
    app = current_app()
    worker = app.Worker(
        hostname=f"parley-{worker_id}@%h",
        pool_cls="threads",
        concurrency=threads,
        queues=queues,
        quiet=True,
        without_mingle=True,
        without_gossip=True,
        without_heartbeat=True,
        redirect_stdouts=False,
        loglevel="WARNING",
    )
    worker.start()
    return _restart_for_broker.is_set()
