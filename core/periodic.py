"""Periodic jobs: work the background worker (`manage.py run_worker`) runs on a timer beside its
task queue -- the webhook outbox sweep today; any app may add its own.

An app registers its job in its `AppConfig.ready` (this module imports no app, so any layer can):

    periodic_job_register(PeriodicJob(name="sla-breaches", run=sla_breaches_check, interval=30))

Every worker process runs every registered job, each in a thread of its own: `run(stop)`, then
`interval` seconds of rest, again until the worker stops. So a job must be safe to run in several
workers at once (claim rows with SKIP LOCKED or a conditional UPDATE), should return promptly
once `stop` is set, and uses the database like any thread (its connection is closed after each
run). A job that meets an unavailable database or Redis waits for it to return
(core.outages: logged once per outage, not per run) and goes on; any other exception is logged
and the job runs again at its next tick. Nothing one job does stops another, or the task queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.db import close_old_connections

from core.outages import dependency_of, outage_report, outage_wait

logger = logging.getLogger("parley.worker")


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    run: Callable[[threading.Event], object]  # gets the worker's stop event
    interval: float  # seconds of rest after each run


_jobs: dict[str, PeriodicJob] = {}


def periodic_job_register(job: PeriodicJob) -> None:
    """Add `job` to what every worker runs. Registering a name again replaces the job (an
    AppConfig.ready that runs twice in tests registers nothing twice)."""
    _jobs[job.name] = job


def periodic_jobs() -> list[PeriodicJob]:
    return list(_jobs.values())


def periodic_job_run_once(job: PeriodicJob, *, stop: threading.Event) -> None:
    """One run of `job`, riding out an outage: on an unavailable dependency, report it and wait
    (until it returns or `stop` is set). Never raises for the job's own failures."""
    try:
        job.run(stop)
    except Exception as exc:  # noqa: BLE001 - a job's failure must not end the worker
        dependency = dependency_of(exc)
        if dependency is None:
            logger.exception("periodic job %s failed", job.name)
        else:
            outage_report(dependency, exc)
            while not stop.is_set() and not outage_wait(dependency, timeout=0.5):
                pass
    finally:
        close_old_connections()


def periodic_job_thread_start(
    job: PeriodicJob, *, stop: threading.Event, interval: float | None = None
) -> threading.Thread:
    """Run `job` every `interval` (default: the job's) seconds in a daemon thread until `stop`."""
    pause = job.interval if interval is None else interval

    def loop() -> None:
        while not stop.is_set():
            periodic_job_run_once(job, stop=stop)
            stop.wait(pause)

    thread = threading.Thread(target=loop, name=f"parley-job-{job.name}", daemon=True)
    thread.start()
    return thread


def periodic_jobs_start(
    *, stop: threading.Event, intervals: dict[str, float] | None = None
) -> list[threading.Thread]:
    """Start every registered job; `intervals` overrides some jobs' rest (by name)."""
    overrides = intervals or {}
    return [
        periodic_job_thread_start(job, stop=stop, interval=overrides.get(job.name))
        for job in periodic_jobs()
    ]
