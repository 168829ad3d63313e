"""The worker rides out a lost database: its task loop and its periodic jobs wait for the end
of the outage and go on, and an attempt the outage cut short goes out again at once.
(tests/faults/ restart a real PostgreSQL under `run_worker`; these pin each piece.)"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from django.db import OperationalError
from django_tasks_db.models import DBTaskResult

from accounts.models import User
from core import outages, periodic
from integrations import delivery, worker
from integrations.delivery import OUTBOX_SWEEP_JOB
from integrations.models import WebhookDelivery, WebhookEndpoint
from tests.integrations.scenarios import delivery_queued
from tests.receiver import Receiver


def _checks_fail_until(monkeypatch: pytest.MonkeyPatch, back: threading.Event) -> None:
    """The database's check (the outage watcher's) fails until `back` is set."""

    def check() -> None:
        if not back.is_set():
            raise OperationalError("the database system is starting up")

    monkeypatch.setitem(outages.CHECKS, "database", check)


def test_the_outbox_sweep_is_a_registered_periodic_job() -> None:
    from escalations.jobs import ESCALATIONS_JOB

    assert periodic.periodic_jobs() == [ESCALATIONS_JOB, OUTBOX_SWEEP_JOB]
    assert (OUTBOX_SWEEP_JOB.name, OUTBOX_SWEEP_JOB.interval) == ("webhook-outbox", 1.0)


def test_registering_a_name_again_replaces_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(periodic, "_jobs", dict(periodic._jobs))
    first = periodic.PeriodicJob(name="sla", run=lambda stop: None, interval=30)
    second = periodic.PeriodicJob(name="sla", run=lambda stop: None, interval=10)
    periodic.periodic_job_register(first)
    periodic.periodic_job_register(second)
    assert periodic.periodic_jobs()[-1] == second
    assert [job.name for job in periodic.periodic_jobs()].count("sla") == 1


def test_a_job_that_meets_an_outage_waits_for_its_end(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    back = threading.Event()
    _checks_fail_until(monkeypatch, back)
    runs: list[float] = []

    def job_run(stop: threading.Event) -> None:
        runs.append(time.monotonic())
        if len(runs) <= 3:
            raise OperationalError("terminating connection due to administrator command")

    job = periodic.PeriodicJob(name="test-job", run=job_run, interval=0.01)
    stop = threading.Event()
    with caplog.at_level(logging.INFO):
        thread = periodic.periodic_job_thread_start(job, stop=stop)
        try:
            # The first run meets the outage (waited for: a loaded machine may start the thread
            # late); then, for fifty ticks, the job waits for the outage's end instead of failing
            # every tick.
            deadline = time.monotonic() + 10
            while not runs and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.5)
            assert len(runs) == 1
            back.set()
            deadline = time.monotonic() + 10
            while len(runs) < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            stop.set()
            thread.join(10)
    assert not thread.is_alive()
    assert len(runs) >= 5
    outage_lines = [r.outage for r in caplog.records if r.name == "parley.outages"]
    # Runs 2 and 3 failed again after the end: each was a (short) outage of its own.
    assert outage_lines.count("started") == outage_lines.count("ended") == 3
    assert not [r for r in caplog.records if r.name == "parley.worker"]


def test_a_job_that_fails_otherwise_is_logged_and_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []

    def job_run(stop: threading.Event) -> None:
        runs.append(1)
        raise ValueError("a bug")

    stop = threading.Event()
    with caplog.at_level(logging.ERROR, logger="parley.worker"):
        thread = periodic.periodic_job_thread_start(
            periodic.PeriodicJob(name="buggy", run=job_run, interval=0.01), stop=stop
        )
        deadline = time.monotonic() + 10
        while len(runs) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        thread.join(10)
    assert len(runs) >= 3
    assert "periodic job buggy failed" in caplog.text
    assert "ValueError: a bug" in caplog.text
    assert outages.outages_current() == {}


def test_a_stopped_worker_does_not_wait_out_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    _checks_fail_until(monkeypatch, threading.Event())  # never back
    stop = threading.Event()

    def job_run(_stop: threading.Event) -> None:
        raise OperationalError("connection refused")

    thread = periodic.periodic_job_thread_start(
        periodic.PeriodicJob(name="down", run=job_run, interval=0.01), stop=stop
    )
    time.sleep(0.3)
    started = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2


def test_the_task_loop_waits_out_an_outage_and_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """django-tasks' loop raising the database's error used to end the process."""
    back = threading.Event()
    _checks_fail_until(monkeypatch, back)
    monkeypatch.setattr(periodic, "_jobs", {})  # the task loop alone
    monkeypatch.setattr(worker.OutageTolerantWorker, "configure_signals", lambda self: None)
    calls: list[float] = []

    def run(self: worker.OutageTolerantWorker) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            threading.Timer(0.5, back.set).start()
            raise OperationalError("terminating connection due to administrator command")
        self.running = False  # as SIGTERM would

    monkeypatch.setattr(worker.OutageTolerantWorker, "run", run)
    with caplog.at_level(logging.INFO, logger="parley.outages"):
        worker.worker_serve(worker_id="w-1", interval=0.01, job_intervals={"webhook-outbox": 0.01})

    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.5  # it waited for the database, not spinning
    assert [r.outage for r in caplog.records] == ["started", "ended"]


def test_another_error_still_ends_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(periodic, "_jobs", {})
    monkeypatch.setattr(worker.OutageTolerantWorker, "configure_signals", lambda self: None)

    def run(self: worker.OutageTolerantWorker) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(worker.OutageTolerantWorker, "run", run)
    with pytest.raises(ValueError, match="a bug"):
        worker.worker_serve(worker_id="w-2", interval=0.01, job_intervals={"webhook-outbox": 0.01})


@pytest.mark.django_db
def test_an_attempt_cut_short_by_an_outage_goes_out_again_at_once(
    customer: User,
    receiver: Receiver,
    conversation_hook: WebhookEndpoint,
    drain: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database went away after the POST, before its outcome was recorded: the row stays
    claimed. Once the worker sees the database again it hands the attempt back, and the next
    sweep queues it -- no waiting out the claim's lease."""
    row = delivery_queued(customer, conversation_hook)

    def lost(*_: object, **__: object) -> str:
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(delivery, "_record", lost)
    with pytest.raises(OperationalError):
        delivery.webhook_attempt_run(row.pk)
    row.refresh_from_db()
    assert row.status == "sending"
    assert delivery.webhook_attempts_interrupted() is True
    monkeypatch.undo()

    assert delivery.webhook_attempts_interrupted_requeue() == 1
    assert delivery.webhook_attempts_interrupted() is False
    DBTaskResult.objects.update(status="RUNNING")  # the interrupted task, never finished
    drain()
    row.refresh_from_db()
    assert (row.status, row.attempt, row.delivered) == ("delivered", 1, True)
    # At least once: the receiver de-duplicates the second copy by its webhook-id.
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 2
    assert len(set(ids)) == 1


@pytest.mark.django_db
def test_an_attempt_another_worker_took_over_is_left_alone(
    customer: User, conversation_hook: WebhookEndpoint
) -> None:
    row = delivery_queued(customer, conversation_hook)
    WebhookDelivery.objects.filter(pk=row.pk).update(status="sending", claim_token="theirs")
    lease = WebhookDelivery.objects.get(pk=row.pk).lease_until
    delivery._interrupted[row.pk] = "ours"
    try:
        assert delivery.webhook_attempts_interrupted_requeue() == 0
    finally:
        delivery._interrupted.pop(row.pk, None)
    assert WebhookDelivery.objects.get(pk=row.pk).lease_until == lease


@pytest.mark.django_db
def test_the_task_an_outage_interrupted_is_closed_once_the_database_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its running row would otherwise stay RUNNING for ever (its attempt goes again as a new
    task, through the sweep)."""
    from django_tasks_db.management.commands.db_worker import Worker

    from integrations.tasks import webhook_attempt

    webhook_attempt.enqueue(123_456)
    task_result = DBTaskResult.objects.get()
    task_result.claim("w-3")

    def lost(self: Worker, db_task_result: Any) -> None:
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(Worker, "run_task", lost)
    tolerant = worker.outage_tolerant_worker(worker_id="w-3", interval=0.01)
    with pytest.raises(OperationalError):
        tolerant.run_task(task_result)
    assert DBTaskResult.objects.get().status == "RUNNING"

    tolerant.after_outage()
    closed = DBTaskResult.objects.get()
    assert closed.status == "FAILED"
    assert closed.exception_class_path == "django.db.utils.OperationalError"
    tolerant.after_outage()  # once only: nothing left to close
    assert tolerant.interrupted is None
