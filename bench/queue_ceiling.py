"""The webhook queue's own ceiling (docs/operations.md, "The webhook queue"): tasks whose
delivery row does not exist, so each attempt is only its claim (one UPDATE that matches
nothing), published through django-tasks after `run_worker` processes are up; timed from the
first publish until the broker holds none of them, queued or unacknowledged.

    DATABASE_URL=... REDIS_URL=... python -m bench.queue_ceiling --tasks 2000 --workers 1 2

Run it on databases of its own (it queues tasks on REDIS_URL's database and migrated
DATABASE_URL); WEBHOOK_QUEUE must be `celery` (the default with REDIS_URL).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.setup import BASE_DIR

# Delivery ids no row has: each attempt's claim finds nothing to send.
MISSING_IDS_FROM = 10**12
START_UP_SECONDS = 8.0


def _pending(client) -> int:  # type: ignore[no-untyped-def]
    queued = sum(
        client.llen(key) for key in client.scan_iter("webhooks*") if client.type(key) == b"list"
    )
    return int(queued + client.hlen("unacked"))


def measure(*, tasks: int, workers: int) -> dict[str, float]:
    import redis
    from django.conf import settings
    from django.db import transaction

    from integrations.delivery import webhook_attempt

    if settings.WEBHOOK_QUEUE != "celery":
        raise SystemExit("bench.queue_ceiling measures the Celery queue: set REDIS_URL")
    client = redis.Redis.from_url(settings.REDIS_URL)
    processes = [
        subprocess.Popen(  # noqa: S603 - our interpreter and manage.py, fixed arguments
            [sys.executable, str(BASE_DIR / "manage.py"), "run_worker"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        time.sleep(START_UP_SECONDS)  # start-up is not the queue's rate
        started = time.perf_counter()
        with transaction.atomic():  # published on commit, as the sweep's tasks are
            for i in range(tasks):
                webhook_attempt.enqueue(MISSING_IDS_FROM + i)
        published = time.perf_counter() - started
        while _pending(client):
            time.sleep(0.02)
        drained = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
    return {
        "workers": workers,
        "tasks": tasks,
        "published_s": round(published, 2),
        "drained_s": round(drained, 2),
        "tasks_per_s": round(tasks / drained, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.queue_ceiling")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    for _ in range(args.rounds):
        for workers in args.workers:
            print(measure(tasks=args.tasks, workers=workers), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
