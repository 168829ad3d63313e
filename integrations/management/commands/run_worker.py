"""The background worker: webhook fan-out (sweep), delivery attempts and the periodic jobs.

`python manage.py run_worker` — django-tasks' database worker loop (claims one task at a time;
on PostgreSQL with SKIP LOCKED, so any number of these run side by side) plus the periodic jobs
(core.periodic: the outbox sweep, which dispatches events and re-queues attempts whose worker
died; the escalations' SLA breaches and auto-assignment). A lost database is waited out, not
fatal (integrations/worker.py). `make run` starts one
beside the server; production runs several beside the web tier (docs/webhooks.md).
"""

from __future__ import annotations

import logging
import threading
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand
from django.utils.crypto import get_random_string

from core.periodic import periodic_jobs
from escalations.jobs import ESCALATIONS_JOB
from integrations.delivery import OUTBOX_SWEEP_JOB
from integrations.worker import worker_run_batch, worker_serve


class Command(BaseCommand):
    help = "Run the background worker (webhook delivery)"

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--interval",
            type=float,
            default=0.5,
            help="Seconds between polls of an empty task queue (default: 0.5)",
        )
        parser.add_argument(
            "--sweep-interval",
            type=float,
            default=1.0,
            help="Seconds to wait after an outbox sweep that caught up (default: 1)",
        )
        parser.add_argument(
            "--periodic-interval",
            type=float,
            default=ESCALATIONS_JOB.interval,
            help="Seconds between runs of the escalations' job: SLA breaches, auto-assignment "
            f"(default: {ESCALATIONS_JOB.interval:g})",
        )
        parser.add_argument(
            "--batch",
            action="store_true",
            help="Deliver everything that is due, then exit",
        )
        parser.add_argument("--worker-id", default=None, help="Unique id (default: random)")

    def handle(self, *args: Any, **options: Any) -> None:
        worker_id = options["worker_id"] or get_random_string(32)
        logging.getLogger("parley.webhooks").info("worker %s starting", worker_id)
        if options["batch"]:
            # Each job once, in this thread (its failure is this command's).
            for job in periodic_jobs():
                job.run(threading.Event())
            worker_run_batch(worker_id=worker_id)
            return
        worker_serve(
            worker_id=worker_id,
            interval=options["interval"],
            job_intervals={
                OUTBOX_SWEEP_JOB.name: options["sweep_interval"],
                ESCALATIONS_JOB.name: options["periodic_interval"],
            },
        )
