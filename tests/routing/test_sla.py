"""SLAs: due times on every escalation, breaches recorded once (by the worker's periodic job or
by the late reply or resolution) with their webhook event and push, the fields and `?sla=`
filters of GET /escalations — and the real `run_worker` recording a breach."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import User
from core.schemas import client_datetime
from escalations import services
from escalations.jobs import escalations_tick, sla_breaches_due
from escalations.models import Escalation
from escalations.sla import due_at
from messaging import realtime
from tests.escalations.conftest import Committed
from tests.factories import ConversationFactory, EscalationFactory
from tests.inbox.conftest import Events
from tests.pushes import Pushes

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def _breach_events(recorded: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, str]]:
    return [(d["id"], d["breach"]) for kind, d in recorded if kind == "escalation.sla_breached"]


def _overdue(escalation: Escalation, *, first: bool = True, resolution: bool = False) -> None:
    past = timezone.now() - timedelta(minutes=1)
    Escalation.objects.filter(pk=escalation.pk).update(
        **({"first_response_due": past} if first else {}),
        **({"resolution_due": past} if resolution else {}),
    )
    escalation.refresh_from_db()


# --- Due times ------------------------------------------------------------------------------


def test_due_times_are_set_when_the_escalation_opens(
    new_escalation: Callable[..., Escalation], settings: Any
) -> None:
    settings.SLA_FIRST_RESPONSE_MINUTES = 0.5
    settings.SLA_RESOLUTION_MINUTES = 90
    escalation = new_escalation()
    assert escalation.first_response_due == escalation.created_at + timedelta(seconds=30)
    assert escalation.resolution_due == escalation.created_at + timedelta(minutes=90)


def test_due_times_follow_business_hours(
    new_escalation: Callable[..., Escalation], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.BUSINESS_HOURS = "mon-fri 09:00-17:00"
    settings.BUSINESS_TIMEZONE = "Europe/Berlin"
    friday_evening = datetime.fromisoformat("2026-03-06T16:50:00+01:00")
    monkeypatch.setattr(timezone, "now", lambda: friday_evening)

    escalation = new_escalation()

    assert escalation.created_at == friday_evening
    assert escalation.first_response_due == datetime.fromisoformat("2026-03-09T09:05:00+01:00")
    # 480 minutes: 10 on Friday, 470 from Monday 09:00 → Monday 16:50.
    assert escalation.resolution_due == datetime.fromisoformat("2026-03-09T16:50:00+01:00")
    assert escalation.resolution_due == due_at(
        friday_evening, 480, business_hours=settings.BUSINESS_HOURS, zone_name="Europe/Berlin"
    )


def test_zero_minutes_sets_no_due_time(
    new_escalation: Callable[..., Escalation], settings: Any
) -> None:
    settings.SLA_RESOLUTION_MINUTES = 0
    escalation = new_escalation()
    assert escalation.first_response_due is not None
    assert escalation.resolution_due is None


# --- Recording breaches ---------------------------------------------------------------------


def test_the_periodic_job_records_each_breach_once(
    new_escalation: Callable[..., Escalation],
    recorded_events: Events,
    pushed: Pushes,
    committed: Committed,
) -> None:
    late = new_escalation()
    on_time = new_escalation()
    _overdue(late, first=True, resolution=True)

    first_tick, second_tick = committed(lambda: (escalations_tick(), escalations_tick()))

    late.refresh_from_db()
    on_time.refresh_from_db()
    assert (first_tick.breaches, second_tick.breaches) == (2, 0)
    assert late.first_response_breached_at is not None
    assert late.resolution_breached_at is not None
    assert on_time.first_response_breached_at is None
    assert _breach_events(recorded_events) == [
        (late.pk, "first_response"),
        (late.pk, "resolution"),
    ]
    event = next(d for kind, d in recorded_events if kind == "escalation.sla_breached")
    assert event["sla_breached"] == ["first_response", "resolution"]
    assert event["customer_id"] == late.conversation.customer_id
    staff = [e for group, e in pushed if group == realtime.ESCALATIONS_GROUP]
    assert [(e["event"], e["escalation"]["id"], e["escalation"]["breach"]) for e in staff] == [
        ("sla_breached", late.pk, "first_response"),
        ("sla_breached", late.pk, "resolution"),
    ]


def test_a_late_first_reply_records_its_breach_itself(
    operator: User, recorded_events: Events, escalation: Escalation
) -> None:
    _overdue(escalation)

    services.escalation_reply(conversation_id=escalation.conversation_id, actor=operator, text="hi")

    escalation.refresh_from_db()
    assert escalation.sla_breaches(now=timezone.now()) == ["first_response"]
    assert _breach_events(recorded_events) == [(escalation.pk, "first_response")]
    assert sla_breaches_due(now=timezone.now()) == 0  # nothing left for the job


def test_an_on_time_reply_and_resolution_breach_nothing(
    operator: User, recorded_events: Events, escalation: Escalation
) -> None:
    cid = escalation.conversation_id
    services.escalation_reply(conversation_id=cid, actor=operator, text="hi")
    services.escalation_resolve(conversation_id=cid, actor=operator, notes="")
    # Even long after the due times: they were met.
    later = timezone.now() + timedelta(days=2)

    escalation.refresh_from_db()
    assert escalation.sla_breaches(now=later) == []
    assert sla_breaches_due(now=later) == 0
    assert _breach_events(recorded_events) == []


def test_resolving_late_without_a_reply_breaches_both(
    operator: User, recorded_events: Events, escalation: Escalation
) -> None:
    _overdue(escalation, first=True, resolution=True)

    services.escalation_resolve(
        conversation_id=escalation.conversation_id, actor=operator, notes=""
    )

    assert _breach_events(recorded_events) == [
        (escalation.pk, "first_response"),
        (escalation.pk, "resolution"),
    ]


def test_resolved_before_the_first_response_was_due_is_not_a_breach() -> None:
    now = timezone.now()
    escalation = EscalationFactory(
        created_at=now - timedelta(minutes=30),
        first_response_due=now - timedelta(minutes=15),
        resolution_due=now + timedelta(hours=1),
        status="resolved",
        resolved_at=now - timedelta(minutes=20),
    )
    assert escalation.sla_breaches(now=now) == []


# --- GET /escalations -----------------------------------------------------------------------


@pytest.fixture
def sla_queue(settings: Any) -> dict[str, Escalation]:
    settings.SLA_DUE_SOON_MINUTES = 5
    now = timezone.now()

    def make(**kwargs: Any) -> Escalation:
        return EscalationFactory(
            conversation=ConversationFactory(status="escalated"),
            created_at=now - timedelta(minutes=10),
            **kwargs,
        )

    return {
        "late": make(
            first_response_due=now - timedelta(minutes=1), resolution_due=now + timedelta(hours=8)
        ),
        "soon": make(
            first_response_due=now + timedelta(minutes=3), resolution_due=now + timedelta(hours=8)
        ),
        "replied_soon": make(  # the first reply is in; only the resolution counts
            first_response_due=now + timedelta(minutes=3),
            first_response_at=now - timedelta(minutes=2),
            resolution_due=now + timedelta(hours=8),
        ),
        "resolution_soon": make(
            first_response_due=now - timedelta(minutes=8),
            first_response_at=now - timedelta(minutes=9),
            resolution_due=now + timedelta(minutes=4),
        ),
        "relaxed": make(
            first_response_due=now + timedelta(minutes=30), resolution_due=now + timedelta(hours=8)
        ),
        "no_sla": make(),
    }


def _queue(client: Client, query: str) -> list[dict[str, Any]]:
    """The items of `GET /escalations?<query>`, which must answer 200."""
    response = client.get(f"/api/v1/escalations?{query}")
    assert response.status_code == 200, response.content
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_items_carry_the_sla_fields(
    sla_queue: dict[str, Escalation], operator_client: Client
) -> None:
    items = {item["id"]: item for item in _queue(operator_client, "limit=100")}
    late, replied = sla_queue["late"], sla_queue["replied_soon"]

    assert items[late.pk]["sla_breached"] == ["first_response"]
    assert items[late.pk]["first_response_due"] == client_datetime(late.first_response_due)
    assert items[late.pk]["resolution_due"] == client_datetime(late.resolution_due)
    assert items[late.pk]["first_responded_at"] is None
    assert items[replied.pk]["first_responded_at"] == client_datetime(replied.first_response_at)
    assert items[replied.pk]["sla_breached"] == []
    assert items[sla_queue["no_sla"].pk]["first_response_due"] is None


@pytest.mark.parametrize(
    ("sla", "keys"),
    [
        ("breached", ["late"]),
        ("due_soon", ["soon", "resolution_soon"]),
    ],
)
def test_sla_filters(
    sla_queue: dict[str, Escalation], operator_client: Client, sla: str, keys: list[str]
) -> None:
    listed = [item["id"] for item in _queue(operator_client, f"sla={sla}")]
    assert listed == sorted(sla_queue[k].pk for k in keys)


def test_sla_filter_combines_with_status(
    sla_queue: dict[str, Escalation], operator_client: Client
) -> None:
    assert _queue(operator_client, "sla=breached&status=resolved") == []


@pytest.mark.parametrize("value", ["late", "", "BREACHED", "due-soon"])
def test_bad_sla_value_is_422(operator_client: Client, value: str) -> None:
    assert operator_client.get(f"/api/v1/escalations?sla={value}").status_code == 422


def test_customers_cannot_filter_escalations(customer_client: Client) -> None:
    assert customer_client.get("/api/v1/escalations?sla=breached").status_code == 403


# --- The real worker --------------------------------------------------------------------------


def _database_url() -> str:
    db = django_settings.DATABASES["default"]
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_run_worker_records_a_breach_within_seconds(escalation: Escalation) -> None:
    _overdue(escalation)
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "DATABASE_URL": _database_url(),
        "DEBUG": "1",
        "LOG_LEVEL": "WARNING",
    }
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", "--periodic-interval", "0.5"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            escalation.refresh_from_db()
            if escalation.first_response_breached_at is not None:
                break
            assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
            time.sleep(0.2)
        assert escalation.first_response_breached_at is not None
    finally:
        worker.terminate()
        worker.wait(timeout=20)


def test_the_inbox_badge_counts_down_warns_and_highlights(settings: Any) -> None:
    from escalations.admin import sla_badge

    settings.SLA_DUE_SOON_MINUTES = 5
    now = timezone.now()

    def badge(**kwargs: Any) -> str:
        return str(sla_badge(EscalationFactory(created_at=now, **kwargs), now=now))

    relaxed = badge(first_response_due=now + timedelta(minutes=30))
    soon = badge(first_response_due=now + timedelta(minutes=3))
    late = badge(
        first_response_due=now - timedelta(minutes=4), resolution_due=now + timedelta(hours=2)
    )
    replied = badge(
        first_response_due=now + timedelta(minutes=3),
        first_response_at=now,
        resolution_due=now + timedelta(hours=2),
    )
    met = badge(status="resolved", resolved_at=now, resolution_due=now + timedelta(hours=1))
    missed = badge(status="resolved", resolved_at=now, resolution_due=now - timedelta(hours=1))

    assert 'class="parley-sla parley-sla-ok"' in relaxed
    assert ">first reply in 30 min<" in relaxed
    assert 'class="parley-sla parley-sla-soon"' in soon
    assert 'class="parley-sla parley-sla-breached"' in late
    assert ">first reply overdue 4 min<" in late
    assert ">resolution in 2 h<" in replied
    assert "parley-sla-met" in met
    assert "parley-sla-missed" in missed
    assert badge() == "—"
