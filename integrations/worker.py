"""`manage.py run_worker` as a long-running process: the task loop in the main thread (a Celery
worker with WEBHOOK_QUEUE=celery, integrations.celery_queue; else django-tasks' database worker
loop), every registered periodic job (core.periodic: the webhook outbox sweep, ...) in a thread
of its own -- and none of it ends because the database went away.

What follows is the database loop; the Celery worker waits out outages in its own way
(integrations.celery_queue).

django-tasks' `db_worker` lets an `OperationalError` out of its loop (a PostgreSQL restart ends
every connection with one), and the process used to exit with it. Here the loop is run again
once the database answers: the outage is reported (core.outages: logged once, and watched with
backoff), the worker waits for its end, marks the task it was running as failed, hands the
delivery attempt it cut short back to the sweep (integrations.delivery), and goes on claiming.
SIGTERM/SIGINT still stop it at any point, the wait included: django-tasks' handler finishes
the attempt in flight, else exits at once.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from django.conf import settings
from django_tasks_db.management.commands.db_worker import Worker

from core.outages import dependency_of, outage_met, outage_wait
from core.periodic import periodic_jobs_start
from integrations.celery_queue import celery_run_due, celery_worker_run
from integrations.delivery import (
    WEBHOOK_QUEUE,
    database_queue_in_use,
    task_worker,
    webhook_attempts_interrupted,
    webhook_attempts_interrupted_requeue,
    worker_run_until_idle,
)


class OutageTolerantWorker(Worker):
    """django-tasks' worker that remembers the task an outage interrupted, so it can be closed
    once the database is back, and hands interrupted attempts back after every task."""

    interrupted: Any = None

    def run_task(self, db_task_result: Any) -> None:
        try:
            super().run_task(db_task_result)
        except Exception as exc:
            # The task failed on the database and so did recording that: close it later.
            if dependency_of(exc) is not None:
                self.interrupted = (db_task_result, exc)
            raise
        if webhook_attempts_interrupted():
            # The attempt met a passing failure that its task could still record.
            webhook_attempts_interrupted_requeue()

    def after_outage(self) -> None:
        """Once the database answers again: the interrupted task marked failed (its attempt
        goes again as a new task), the interrupted attempts handed back to the sweep. Nothing
        to do (and no query) when no outage interrupted anything."""
        if self.interrupted is not None:
            task_result, exc = self.interrupted
            task_result.set_failed(exc)
            self.interrupted = None
        if webhook_attempts_interrupted():
            webhook_attempts_interrupted_requeue()


def outage_tolerant_worker(*, worker_id: str, interval: float) -> OutageTolerantWorker:
    worker: OutageTolerantWorker = task_worker(
        worker_id=worker_id, batch=False, interval=interval, worker_class=OutageTolerantWorker
    )
    return worker


def worker_serve(*, worker_id: str, interval: float, job_intervals: dict[str, float]) -> None:
    """Run until SIGTERM/SIGINT: the task loop here (django-tasks-db's, or a Celery worker when
    WEBHOOK_QUEUE=celery), the periodic jobs beside it, an outage of the database waited out
    wherever it is met."""
    stop = threading.Event()
    periodic_jobs_start(stop=stop, intervals=job_intervals)
    if not database_queue_in_use():
        try:
            # Celery's own loop: its broker connection is retried forever (a Redis outage is
            # waited out), a database outage inside a task is waited out by the task
            # (integrations.celery_queue), SIGTERM/SIGINT is a warm shutdown.
            restart = celery_worker_run(
                worker_id=worker_id,
                queues=[WEBHOOK_QUEUE],
                threads=settings.WEBHOOK_WORKER_THREADS,
            )
        finally:
            stop.set()
        if restart:
            # The broker came back after an outage: this same command again, as a fresh
            # process (same pid, so a supervisor or a test holding it sees no exit).
            os.execv(sys.executable, [sys.executable, *sys.argv])  # noqa: S606 - our own command line
        return
    worker = outage_tolerant_worker(worker_id=worker_id, interval=interval)
    # SIGINT/SIGTERM: finish the attempt in flight, then exit (django-tasks' handling).
    worker.configure_signals()
    try:
        while True:
            try:
                worker.after_outage()
                worker.run()
                return  # stopped by SIGTERM/SIGINT
            except Exception as exc:
                dependency = outage_met(exc)
                if dependency is None:
                    raise
                outage_wait(dependency)
    finally:
        stop.set()


def worker_run_batch(*, worker_id: str) -> None:
    """`run_worker --batch`: sweep and run what is due until nothing is left, on either queue
    (with Celery the due tasks are taken from the broker and run in this thread)."""
    if database_queue_in_use():
        worker_run_until_idle(worker_id=worker_id)
    else:
        worker_run_until_idle(run_due=lambda: celery_run_due(queue=WEBHOOK_QUEUE))
