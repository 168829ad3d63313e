"""The worker's periodic jobs: a thread of `run_worker` that runs each app's tick every few
seconds (today the escalations' SLA breaches and auto-assignment safety net,
escalations.jobs). Kept apart from the webhook sweeper and the task loop so each can fail,
retry and be changed on its own."""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections

from escalations.jobs import escalations_tick

logger = logging.getLogger("parley.worker")

PERIODIC_SECONDS = 10.0


def periodic_run_once() -> None:
    """Every periodic job once (also `run_worker --batch`)."""
    result = escalations_tick()
    if result.breaches or result.assigned:
        logger.info(
            "periodic: %d SLA breach(es) recorded, %d escalation(s) assigned",
            result.breaches,
            result.assigned,
        )


def periodic_thread_start(*, interval: float, stop: threading.Event) -> threading.Thread:
    """Run the periodic jobs every `interval` seconds until `stop` is set, in their own thread
    (and database connection). A failed tick is logged and retried on the next one."""

    def loop() -> None:
        while not stop.is_set():
            try:
                periodic_run_once()
            except Exception:  # noqa: BLE001 - e.g. the database is away; retried next tick
                logger.exception("periodic jobs failed")
            finally:
                close_old_connections()
            stop.wait(interval)

    thread = threading.Thread(target=loop, name="parley-periodic", daemon=True)
    thread.start()
    return thread
