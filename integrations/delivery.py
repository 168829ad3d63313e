"""The webhook pipeline: outbox write → fan-out (sweep) → one task per attempt → record.

1. `outbox_write` is the domain-event sink: it inserts `WebhookEvent` rows in the caller's
   transaction (messaging/escalations services), so a rolled-back change leaves no event — and,
   in the same statement, only when an active endpoint exists (most deployments have none).
2. `webhook_outbox_sweep` (the worker runs it until a sweep finds less than a full batch, then
   waits a second; several workers may) turns undispatched events into one pending
   `WebhookDelivery` per subscribed endpoint and queues a django-tasks task for each — in one
   transaction, so a delivery row never lacks its task. It also re-queues deliveries whose task
   was lost (a worker killed mid-attempt): the delivery rows, not the task queue, are the truth.
3. `webhook_attempt_run` (the task) claims the row with a conditional UPDATE — of two workers
   handed the same row only one sends — signs with `standardwebhooks`, POSTs through the SSRF
   guard, and records the outcome; a failure schedules the next attempt as a new row.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import httpx
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.utils import timezone
from django_tasks import task
from standardwebhooks import Webhook

from core.fixedsql import field, prepared_cursor
from core.outages import dependency_of
from core.periodic import PeriodicJob, periodic_job_thread_start
from integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from integrations.urlguard import UnsafeUrl, guarded_post
from messaging.events import EVENT_ROW_COLUMNS, DomainEvent, new_event_id

logger = logging.getLogger("parley.webhooks")

# A queued attempt not claimed this long after its due time is assumed lost and re-queued.
STALE_AFTER = timedelta(seconds=60)
# A claim outlives the request timeout by this much before the sweeper takes it back.
CLAIM_MARGIN = timedelta(seconds=30)
SWEEP_BATCH = 200
USER_AGENT = "Parley-Webhooks/1.0"
WEBHOOK_QUEUE = "webhooks"


# --- 1. The outbox (inside the caller's transaction) ------------------------------------------


# Why the INSERT carries its own condition. Most deployments have no webhook endpoint at all,
# and then every outbox row is written only for the sweep to mark it dispatched with nothing to
# deliver: ORM insert compilation, parameter dumping and PostgreSQL's work on every message for
# nothing. So the statement inserts the events only `WHERE EXISTS` an active endpoint: the
# decision is taken by the database, in the same statement and transaction as the write, never
# from a cache that could be stale in another process.
#
# "Any active endpoint", not "an active endpoint subscribed to this type": the sweep filters by
# `event.type in endpoint.events` anyway, so rows for unsubscribed types cost one fan-out that
# creates no delivery, as before. Testing membership in the JSON list would need different SQL
# per database (jsonb `?` on PostgreSQL, json_each on SQLite) on the hot path, and the saving
# matters in the common case, which is "no endpoint at all".
#
# The rule "an endpoint hears of what happened after it was created, nothing older" still holds:
# the sweep still compares `endpoint.created_at <= event.created_at`; this condition only ever
# leaves out events no active endpoint existed for when the statement ran.
# The one race it adds: an endpoint whose creation (or re-activation) commits *between* this
# statement and the commit of the event's transaction is not seen by the statement
# (PostgreSQL's READ COMMITTED snapshot is taken when the statement starts), so it misses those
# few events although its `created_at` may be earlier than theirs and the sweep would have sent
# them to it. The window is the rest of one service transaction (milliseconds on the hot path).
# SQLite runs every write transaction IMMEDIATE (config/settings.py): no other write commits
# between BEGIN and COMMIT, so there it cannot happen. The boundary was never exact anyway: an
# endpoint's created_at is taken before its row commits, and a sweep in between dispatched newer
# events without it. Likewise an endpoint switched back to active does not get what happened
# while no endpoint was active: those events are not written at all, where before they waited in
# the outbox and went out if it was active again by the next sweep. docs/webhooks.md says the
# same for operators.
_OUTBOX_COLUMNS = ("event_id", "type", "payload", "customer", "created_at")


def _quote(name: object) -> str:
    # What connection.ops.quote_name does on both backends Parley runs on (SQLite, PostgreSQL).
    return f'"{name}"'


_CREATED_AT = field(WebhookEvent, "created_at")


@cache
def _outbox_sql(alias: str, rows: int) -> str:
    """The conditional multi-row INSERT for `rows` events (names from the models, every value
    bound as a parameter). Built once per process per alias and row count (1-3 in practice)."""
    connection = connections[alias]
    fields = [field(WebhookEvent, name) for name in _OUTBOX_COLUMNS]
    columns = ", ".join(_quote(f.column) for f in fields)
    if connection.vendor == "postgresql":
        # INSERT … SELECT types the VALUES' columns on their own (an untyped literal would be
        # text, which a jsonb or timestamptz column refuses): say the columns' types.
        row = ", ".join(f"CAST(%s AS {f.db_type(connection)})" for f in fields)
    else:
        row = ", ".join("%s" for _ in fields)
    values = ", ".join(f"({row})" for _ in range(rows))
    return (
        f"INSERT INTO {_quote(WebhookEvent._meta.db_table)} ({columns}) "  # noqa: S608 - names from the models
        f"SELECT * FROM (VALUES {values}) AS v WHERE {_any_active_endpoint()}"
    )


@cache
def _any_active_endpoint() -> str:
    is_active = _quote(field(WebhookEndpoint, "is_active").column)
    table = _quote(WebhookEndpoint._meta.db_table)
    return f"EXISTS (SELECT 1 FROM {table} WHERE {is_active})"  # noqa: S608 - model names


@cache
def outbox_insert_from(source: str) -> str:
    """`outbox_write` as one more CTE of the caller's statement (PostgreSQL), for the events
    already in CTE `source` (messaging.events.EVENT_ROW_COLUMNS, their ids made by
    messaging.events.new_event_id like the sink's): the same rows under the same condition."""
    columns = ", ".join(_quote(field(WebhookEvent, name).column) for name in _OUTBOX_COLUMNS)
    return (
        f"INSERT INTO {_quote(WebhookEvent._meta.db_table)} ({columns}) "  # noqa: S608 - names from the models
        f"SELECT {', '.join(EVENT_ROW_COLUMNS)} FROM {source} WHERE {_any_active_endpoint()}"
    )


def outbox_write(events: list[DomainEvent]) -> None:
    """Domain-event sink (registered in IntegrationsConfig.ready): one INSERT for the events of
    one change, inside the change's transaction, which writes nothing when no active webhook
    endpoint exists (see above). The rows are those `WebhookEvent.objects.bulk_create` wrote:
    `event_id` from the model's default, one `created_at` for the change, `dispatched_at` null.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    created_at = _CREATED_AT.get_db_prep_save(timezone.now(), connection)
    params: list[Any] = []
    for event_type, data in events:
        # json.dumps as JSONField does it (no encoder): the same text on SQLite, and PostgreSQL
        # parses it into jsonb.
        params += [
            new_event_id(),
            event_type,
            json.dumps(data),
            data.get("customer_id"),
            created_at,
        ]
    # A fixed statement per number of events: bound on the server and prepared, like the rest
    # of the message's hot path (core.fixedsql).
    with prepared_cursor(DEFAULT_DB_ALIAS) as cursor:
        cursor.execute(_outbox_sql(DEFAULT_DB_ALIAS, len(events)), params)


# --- 2. Fan-out and recovery ------------------------------------------------------------------


def _enqueue(delivery: WebhookDelivery, *, save: bool = True) -> None:
    # The database task backend writes its row in the current transaction; the Celery backend
    # publishes once that transaction commits (integrations.celery_queue): either way a worker
    # never meets a task whose delivery row did not commit.
    result = webhook_attempt.using(run_after=delivery.next_attempt_at).enqueue(delivery.pk)
    delivery.task_id = str(result.id)
    if save:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(task_id=delivery.task_id)


def webhook_outbox_sweep(*, now: datetime | None = None) -> int:
    """Dispatch undispatched events and re-queue lost attempts, at most SWEEP_BATCH of each.
    Safe to run from several workers at once (PostgreSQL: SKIP LOCKED; SQLite: one writer at a
    time). Returns how many deliveries it queued."""
    return _sweep(now=now or timezone.now())[0]


def webhook_outbox_sweep_until_caught_up(*, stop: threading.Event | None = None) -> int:
    """Sweep, and sweep again at once while the last sweep took a full batch (of events or of
    lost attempts): a backlog is worked off at the sweep's own speed instead of SWEEP_BATCH
    events per sweep interval (200 events/s at the default 1 s, i.e. ~100 messages/s, above
    which the outbox grew without bound). Ends at the first sweep that took less than a full
    batch of both, or when `stop` is set. Each full sweep makes lasting progress — its events
    are marked dispatched, its lost attempts get a lease in the future, rows another worker
    holds are skipped — so only new rows arriving faster than the sweep keep it going. Returns
    how many deliveries it queued."""
    queued = 0
    while True:
        count, full = _sweep(now=timezone.now())
        queued += count
        if not full or (stop is not None and stop.is_set()):
            return queued


def _sweep(*, now: datetime) -> tuple[int, bool]:
    """One sweep: (deliveries queued, whether it took a full batch of events or of lost
    attempts, i.e. more may be waiting)."""
    queued = 0
    with transaction.atomic():
        events = list(
            WebhookEvent.objects.filter(dispatched_at__isnull=True)
            .order_by("created_at", "id")
            .select_for_update(skip_locked=True)[:SWEEP_BATCH]
        )
        if events:
            endpoints = list(WebhookEndpoint.objects.filter(is_active=True).order_by("id"))
            deliveries = [
                WebhookDelivery(
                    endpoint=endpoint,
                    event=event,
                    attempt=1,
                    next_attempt_at=now,
                    lease_until=now + STALE_AFTER,
                    created_at=now,
                )
                for event in events
                for endpoint in endpoints
                # An endpoint hears of what happened after it was created, nothing older.
                if event.type in endpoint.events and endpoint.created_at <= event.created_at
            ]
            WebhookDelivery.objects.bulk_create(deliveries)
            WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).update(dispatched_at=now)
            for delivery in deliveries:
                _enqueue(delivery, save=False)
            WebhookDelivery.objects.bulk_update(deliveries, ["task_id"], batch_size=500)
            queued += len(deliveries)
    with transaction.atomic():
        lost = list(
            WebhookDelivery.objects.filter(
                status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.SENDING],
                lease_until__lt=now,
            )
            .order_by("lease_until", "id")
            .select_for_update(skip_locked=True)[:SWEEP_BATCH]
        )
        still_queued = _tasks_waiting(
            [d.task_id for d in lost if d.status == WebhookDelivery.Status.PENDING and d.task_id]
        )
        for delivery in lost:
            unclaimed = delivery.status == WebhookDelivery.Status.PENDING
            if unclaimed and still_queued is not None and delivery.task_id in still_queued:
                # Its task is still waiting behind others (a long queue): a second task would
                # only lengthen the queue. Look again later.
                delivery.lease_until = now + STALE_AFTER
                delivery.save(update_fields=["lease_until"])
                continue
            logger.warning("re-queueing webhook delivery %s (its task was lost)", delivery.pk)
            if unclaimed and still_queued is None:
                # The queue cannot be asked (Celery): the row's lease alone says "lost". Its
                # task may only be waiting behind a backlog, so each re-queue waits as long
                # again as the row has already waited past its due time: a row stuck behind a
                # long queue gets a few duplicates (each harmless: the claim), not one per
                # STALE_AFTER. The due time is kept, so the wait keeps doubling.
                delivery.lease_until = now + max(STALE_AFTER, now - delivery.next_attempt_at)
                delivery.save(update_fields=["lease_until"])
                _enqueue(delivery)
                queued += 1
                continue
            delivery.status = WebhookDelivery.Status.PENDING
            delivery.claim_token = ""
            delivery.next_attempt_at = max(now, delivery.next_attempt_at)
            delivery.lease_until = delivery.next_attempt_at + STALE_AFTER
            delivery.save(update_fields=["status", "claim_token", "next_attempt_at", "lease_until"])
            _enqueue(delivery)
            queued += 1
    return queued, len(events) == SWEEP_BATCH or len(lost) == SWEEP_BATCH


def _tasks_waiting(task_ids: list[str]) -> set[str] | None:
    """The ids among `task_ids` whose task is still queued (not yet claimed by a worker), or
    None when the queue cannot be asked (the Celery backend: Redis holds the tasks)."""
    if not database_queue_in_use():
        return None
    if not task_ids:
        return set()
    from django_tasks_db.models import DBTaskResult

    return {
        str(task_id)
        for task_id in DBTaskResult.objects.filter(id__in=task_ids, status="READY").values_list(
            "id", flat=True
        )
    }


# --- 3. One attempt -----------------------------------------------------------------------------


def webhook_body(event: WebhookEvent) -> str:
    """The JSON body receivers get: the same bytes on every attempt of one event."""
    timestamp = (
        event.created_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    return json.dumps(
        {"id": event.event_id, "type": event.type, "timestamp": timestamp, "data": event.payload},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def signed_headers(*, event_id: str, secret: str, body: str, at: datetime) -> dict[str, str]:
    """Standard Webhooks headers; `webhook-timestamp` is the time of this attempt, which
    receivers compare with their clock (5 minutes' tolerance in the reference library)."""
    at = at.replace(microsecond=0)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, body),
    }


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff after failed attempt number `attempt` (1-based)."""
    return timedelta(seconds=settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempt - 1))


# Attempts of this process that an unavailable database cut short: delivery id → the claim
# token the attempt used. The row may be left claimed (SENDING) or unclaimed with its task
# gone; `webhook_attempts_interrupted_requeue` hands them back to the sweep once the database
# answers, instead of waiting out their lease.
_interrupted: dict[int, str] = {}
_interrupted_lock = threading.Lock()


def webhook_attempt_run(delivery_id: int) -> str:
    """Make one delivery attempt. Returns what happened (for the task result and logs)."""
    token = uuid.uuid4().hex
    try:
        return _attempt(delivery_id, token)
    except Exception as exc:
        if dependency_of(exc) is not None:
            with _interrupted_lock:
                _interrupted[delivery_id] = token
        raise


def webhook_attempts_interrupted() -> bool:
    return bool(_interrupted)


def webhook_attempts_interrupted_requeue() -> int:
    """Hand the attempts an outage cut short in this process back to the sweep at once: their
    lease ends now, so the next sweep (within a second) re-queues them as lost. Only a row
    still as the attempt left it -- unclaimed, or claimed with the attempt's own token -- is
    touched; one another worker took over meanwhile is not. Returns how many."""
    with _interrupted_lock:
        pending = dict(_interrupted)
    requeued = 0
    now = timezone.now()
    for delivery_id, token in pending.items():
        requeued += (
            WebhookDelivery.objects.filter(pk=delivery_id)
            .filter(
                models.Q(status=WebhookDelivery.Status.PENDING)
                | models.Q(status=WebhookDelivery.Status.SENDING, claim_token=token)
            )
            .update(lease_until=now)
        )
        with _interrupted_lock:
            if _interrupted.get(delivery_id) == token:
                del _interrupted[delivery_id]
    if requeued:
        logger.warning("%d webhook attempt(s) cut short by an outage handed back", requeued)
    return requeued


def _attempt(delivery_id: int, token: str) -> str:
    now = timezone.now()
    timeout = float(settings.WEBHOOK_TIMEOUT_SECONDS)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING
    ).update(
        status=WebhookDelivery.Status.SENDING,
        claim_token=token,
        lease_until=now + timedelta(seconds=timeout) + CLAIM_MARGIN,
        attempted_at=now,
    )
    if not claimed:
        return "skipped"  # already sent, taken by another worker, or erased
    delivery = (
        WebhookDelivery.objects.select_related("event", "endpoint").filter(pk=delivery_id).first()
    )
    if delivery is None:
        return "skipped"
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        return _record(delivery, token, status_code=None, error="Endpoint disabled", retry=False)

    body = webhook_body(delivery.event)
    headers = signed_headers(
        event_id=delivery.event.event_id, secret=endpoint.secret, body=body, at=timezone.now()
    )
    status_code: int | None = None
    retry = True
    try:
        response = guarded_post(
            endpoint.url, content=body.encode(), headers=headers, timeout=timeout
        )
    except UnsafeUrl as exc:
        error = str(exc)
        retry = exc.retryable
    except httpx.TimeoutException:
        error = f"Timed out after {timeout:g} s"
    except httpx.HTTPError as exc:
        error = f"Connection failed ({type(exc).__name__})"
    else:
        status_code = response.status_code
        error = ""
        if 300 <= status_code < 400:
            error = f"HTTP {status_code}: redirects are not followed"
        elif not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    return _record(delivery, token, status_code=status_code, error=error, retry=retry)


# Defined here, beside the code that queues it (the sweep, a retry, a redelivery), so nothing
# imports back into this module; integrations.tasks keeps the path rows of earlier releases name.
@task(queue_name=WEBHOOK_QUEUE)
def webhook_attempt(delivery_id: int) -> str:
    """One delivery attempt (`webhook_attempt_run`), as a django-tasks task."""
    return webhook_attempt_run(delivery_id)


def _record(
    delivery: WebhookDelivery, token: str, *, status_code: int | None, error: str, retry: bool
) -> str:
    delivered = not error and status_code is not None
    now = timezone.now()
    with transaction.atomic():
        current = (
            WebhookDelivery.objects.select_for_update()
            .filter(pk=delivery.pk, claim_token=token, status=WebhookDelivery.Status.SENDING)
            .first()
        )
        if current is None:
            # Erased meanwhile, or our claim expired and another worker took the row over.
            return "dropped"
        current.status_code = status_code
        current.error = error[:500]
        current.delivered = delivered
        if delivered:
            current.status = WebhookDelivery.Status.DELIVERED
        elif retry and current.attempt < settings.WEBHOOK_MAX_ATTEMPTS:
            current.status = WebhookDelivery.Status.RETRYING
            due = now + retry_delay(current.attempt)
            following = WebhookDelivery.objects.create(
                endpoint_id=current.endpoint_id,
                event_id=current.event_id,
                attempt=current.attempt + 1,
                next_attempt_at=due,
                lease_until=due + STALE_AFTER,
                created_at=now,
            )
            _enqueue(following)
        else:
            current.status = WebhookDelivery.Status.FAILED
        current.save(update_fields=["status", "status_code", "error", "delivered"])
    if not delivered:
        logger.info("webhook delivery %s attempt %s failed: %s", current.pk, current.attempt, error)
    return str(current.status)


def webhook_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue a fresh attempt of `delivery`'s event to its endpoint (admin "redeliver")."""
    now = timezone.now()
    with transaction.atomic():
        last = (
            WebhookDelivery.objects.select_for_update()
            .filter(endpoint_id=delivery.endpoint_id, event_id=delivery.event_id)
            .order_by("-attempt")
            .first()
        )
        attempt = (last.attempt if last is not None else 0) + 1
        following = WebhookDelivery.objects.create(
            endpoint_id=delivery.endpoint_id,
            event_id=delivery.event_id,
            attempt=attempt,
            next_attempt_at=now,
            lease_until=now + STALE_AFTER,
            created_at=now,
        )
        _enqueue(following)
    return following


def webhook_history_prune(*, now: datetime, keep_days: int = 30) -> int:
    """Delete dispatched events older than `keep_days` whose attempts are all finished, with
    their delivery history (for `prune_expired`). Returns how many events went."""
    cutoff = now - timedelta(days=keep_days)
    open_attempts = WebhookDelivery.objects.filter(
        event=models.OuterRef("pk"),
        status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.SENDING],
    )
    deleted, by_model = (
        WebhookEvent.objects.filter(created_at__lt=cutoff, dispatched_at__isnull=False)
        .exclude(models.Exists(open_attempts))
        .delete()
    )
    return by_model.get(WebhookEvent._meta.label, 0)


# --- The worker --------------------------------------------------------------------------------


def task_worker(*, worker_id: str, batch: bool, interval: float, worker_class: Any = None) -> Any:
    """django-tasks' database worker for the webhook queue (or `worker_class`, a subclass)."""
    from django_tasks_db.management.commands.db_worker import Worker

    return (worker_class or Worker)(
        queue_names=[WEBHOOK_QUEUE],
        interval=interval,
        batch=batch,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=worker_id,
        excluded_queue_names=[],
    )


def _run_due_tasks(worker: Any) -> int:
    """django-tasks' claim-and-run step (its worker loop without the sleeping and the
    connection recycling, which would close a test's transaction)."""
    from django_tasks_db.models import DBTaskResult
    from django_tasks_db.utils import exclusive_transaction

    ran = 0
    while True:
        tasks = DBTaskResult.objects.ready().filter(
            backend_name=worker.backend_name, queue_name__in=worker.queue_names
        )
        with exclusive_transaction(tasks.db):
            task_result = tasks.get_locked()
            if task_result is not None:
                task_result.claim(worker.worker_id)
        if task_result is None:
            return ran
        worker.run_task(task_result)
        ran += 1


def database_queue_in_use() -> bool:
    """Whether webhook_attempt's backend is django-tasks' database one (settings.TASKS,
    WEBHOOK_QUEUE); else Celery (integrations.celery_queue)."""
    from django_tasks_db.backend import DatabaseBackend

    return isinstance(webhook_attempt.get_backend(), DatabaseBackend)


def worker_run_until_idle(
    *, worker_id: str | None = None, run_due: Callable[[], int] | None = None
) -> None:
    """Sweep and run due tasks until nothing is left (tests, `run_worker --batch`): claimed
    from django-tasks-db's table, or by `run_due` (with Celery: integrations.worker takes them
    from the broker's queue and runs them here)."""
    if run_due is None:
        worker = task_worker(worker_id=worker_id or uuid.uuid4().hex, batch=True, interval=0)

        def run_due() -> int:
            return _run_due_tasks(worker)

    while True:
        queued, full = _sweep(now=timezone.now())
        ran = run_due()
        # A full batch may have queued nothing (events no endpoint subscribes to) while more
        # events wait behind it.
        if not queued and not ran and not full:
            return


def _outbox_sweep_job(stop: threading.Event) -> None:
    webhook_outbox_sweep_until_caught_up(stop=stop)


# Registered in IntegrationsConfig.ready: every worker sweeps until caught up, then rests a
# second (`run_worker --sweep-interval`).
OUTBOX_SWEEP_JOB = PeriodicJob(name="webhook-outbox", run=_outbox_sweep_job, interval=1.0)


def sweeper_thread_start(*, interval: float, stop: threading.Event) -> threading.Thread:
    """Sweep until caught up, then wait `interval` seconds, beside the task loop, in its own
    thread (and database connection). The wait comes only after a sweep that found less than a
    full batch, so a backlog is not capped at SWEEP_BATCH events per interval. A sweep that
    meets an unavailable database waits for it (core.periodic)."""
    return periodic_job_thread_start(OUTBOX_SWEEP_JOB, stop=stop, interval=interval)
