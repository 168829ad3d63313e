"""The background worker: webhook fan-out (sweep), delivery attempts and the periodic jobs.

`python manage.py run_worker` — django-tasks' database worker loop (claims one task at a time;
on PostgreSQL with SKIP LOCKED, so any number of these run side by side) plus a sweeper thread
that dispatches outbox events and re-queues attempts whose worker died, and a periodic thread
(SLA breaches, auto-assignment: integrations.periodic). `make run` starts one
beside the server; production runs several beside the web tier (docs/webhooks.md).
"""

from __future__ import annotations

import logging
import threading
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand
from django.utils.crypto import get_random_string

from integrations.delivery import sweeper_thread_start, task_worker, worker_run_until_idle
from integrations.periodic import PERIODIC_SECONDS, periodic_run_once, periodic_thread_start


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
            default=PERIODIC_SECONDS,
            help="Seconds between runs of the periodic jobs: SLA breaches, auto-assignment "
            f"(default: {PERIODIC_SECONDS:g})",
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
            periodic_run_once()
            worker_run_until_idle(worker_id=worker_id)
            return
        stop = threading.Event()
        sweeper_thread_start(interval=options["sweep_interval"], stop=stop)
        periodic_thread_start(interval=options["periodic_interval"], stop=stop)
        worker = task_worker(worker_id=worker_id, batch=False, interval=options["interval"])
        # SIGINT/SIGTERM: finish the attempt in flight, then exit (django-tasks' handling).
        worker.configure_signals()
        try:
            worker.run()
        finally:
            stop.set()
