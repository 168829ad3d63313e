"""The escalations' periodic job, run by the background worker (`manage.py run_worker`, which runs
every job registered with core.periodic; registered in EscalationsConfig.ready) — never by a
thread of the web processes.

Each tick, on any number of workers at once:
- records the SLA breaches whose due time has passed (within one tick of it: the worker runs
  it every ESCALATIONS_JOB.interval seconds, 10 by default, well inside the promised 60 s),
  each once, with its `escalation.sla_breached` event and push
  (escalations.services.sla_breaches_record, under the escalation's locks, so two workers never
  record one breach twice);
- with ASSIGNMENT_MODE=auto, drains the queue: a safety net behind the drains that follow every
  event that frees capacity or brings an operator online (those assign within the request).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from core.periodic import PeriodicJob
from escalations import services
from escalations.models import Escalation

logger = logging.getLogger("parley.worker")

UNRESOLVED = (Escalation.Status.OPEN, Escalation.Status.ASSIGNED)


@dataclass(frozen=True)
class TickResult:
    breaches: int  # SLA breaches recorded
    assigned: int  # escalations auto-assigned


def sla_breaches_due(*, now: datetime) -> int:
    """Record every breach that is due and not yet recorded. Resolved escalations need no scan:
    a late resolution (or a late first reply) records its own breach in its transaction. The
    candidates are unresolved (the queue: `esc_status_age` index), so the cost follows the
    queue's length, not the table's."""
    candidates = (
        Escalation.objects.filter(status__in=UNRESOLVED)
        .filter(
            Q(
                first_response_due__lte=now,
                first_response_breached_at__isnull=True,
                first_response_at__isnull=True,
            )
            | Q(resolution_due__lte=now, resolution_breached_at__isnull=True)
        )
        .order_by("created_at", "id")
        .values_list("pk", "conversation_id")
    )
    recorded = 0
    for escalation_id, conversation_id in candidates:
        recorded += len(
            services.sla_breach_check(
                escalation_id=escalation_id, conversation_id=conversation_id, now=now
            )
        )
    return recorded


def escalations_tick(*, now: datetime | None = None) -> TickResult:
    """One tick of the periodic job (see the module's docstring)."""
    breaches = sla_breaches_due(now=now or timezone.now())
    return TickResult(breaches=breaches, assigned=services.assignment_queue_drain())


def _escalations_job(stop: threading.Event) -> None:
    result = escalations_tick()
    if result.breaches or result.assigned:
        logger.info(
            "escalations: %d SLA breach(es) recorded, %d escalation(s) assigned",
            result.breaches,
            result.assigned,
        )


# Every worker runs it every 10 s (`run_worker --periodic-interval`); an outage of the database
# is waited out by core.periodic.
ESCALATIONS_JOB = PeriodicJob(name="escalations", run=_escalations_job, interval=10.0)
