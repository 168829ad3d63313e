from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from core.modelfields import optional_user


class Escalation(models.Model):
    """A hand-off of a conversation from the agent to human operators."""

    class Status(models.TextChoices):
        OPEN = "open"
        ASSIGNED = "assigned"
        RESOLVED = "resolved"

    conversation = models.ForeignKey(
        "messaging.Conversation", on_delete=models.CASCADE, related_name="escalations"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    reason = models.CharField(max_length=255)
    # What the agent believed at hand-off, for operators and statistics.
    intent = models.CharField(max_length=32, blank=True, null=True)
    confidence = models.FloatField(null=True, blank=True)
    assigned_to = optional_user(related_name="assigned_escalations")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = optional_user(related_name="resolved_escalations")
    resolution_notes = models.TextField(blank=True)
    # SLA due times, counted in business hours from created_at when the escalation opens
    # (escalations.sla); None when that SLA is off (0 minutes) or the escalation is older
    # than SLAs. A breach is stamped once, by the worker's periodic job or by the reply or
    # resolution that came late, together with its webhook event and push.
    first_response_due = models.DateTimeField(null=True, blank=True)
    resolution_due = models.DateTimeField(null=True, blank=True)
    first_response_breached_at = models.DateTimeField(null=True, blank=True, editable=False)
    resolution_breached_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"],
                condition=~Q(status="resolved"),
                name="one_unresolved_escalation_per_conversation",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at", "id"], name="esc_status_age"),
            # Open assignments per operator (auto-assignment, GET /operators).
            models.Index(fields=["assigned_to", "status"], name="esc_assignee_status"),
        ]

    def __str__(self) -> str:
        # The conversation's id leads: it is the one the API's /escalations/{id}/... paths take.
        return f"Conversation #{self.conversation_id} (escalation {self.pk}, {self.status})"

    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"
    # SLA → the field stamping its breach; also the order of `sla_breached` lists.
    BREACH_FIELDS = {
        FIRST_RESPONSE: "first_response_breached_at",
        RESOLUTION: "resolution_breached_at",
    }

    def sla_breaches(self, *, now: datetime) -> list[str]:
        """The SLAs breached as of `now`, in BREACH_FIELDS order. The first response is late
        when neither an operator's reply nor the resolution came by its due time; the
        resolution when it did not come by its own. A breach, once true, stays true (the times
        it depends on are written once), so this agrees with the stamps the job records."""
        breached = []
        if self.first_response_breached_at is not None or _late(
            self.first_response_due, self.first_response_at or self.resolved_at, now
        ):
            breached.append(self.FIRST_RESPONSE)
        if self.resolution_breached_at is not None or _late(
            self.resolution_due, self.resolved_at, now
        ):
            breached.append(self.RESOLUTION)
        return breached


def _late(due: datetime | None, done_at: datetime | None, now: datetime) -> bool:
    return due is not None and (done_at or now) > due


def sla_breached_q(*, now: datetime) -> Q:
    """`Escalation.sla_breaches(now=now)` is not empty, as a filter (GET /escalations
    ?sla=breached, the inbox)."""
    first_late = Q(first_response_due__isnull=False) & (
        Q(first_response_at__gt=F("first_response_due"))
        | Q(first_response_at__isnull=True, resolved_at__gt=F("first_response_due"))
        | Q(first_response_at__isnull=True, resolved_at__isnull=True, first_response_due__lt=now)
    )
    resolution_late = Q(resolution_due__isnull=False) & (
        Q(resolved_at__gt=F("resolution_due")) | Q(resolved_at__isnull=True, resolution_due__lt=now)
    )
    return (
        first_late
        | resolution_late
        | Q(first_response_breached_at__isnull=False)
        | Q(resolution_breached_at__isnull=False)
    )


def sla_due_soon_q(*, now: datetime, within: timedelta) -> Q:
    """Unresolved, and a deadline still pending falls in (now, now + within]: the first
    response (no reply yet) or the resolution."""
    soon = now + within
    return ~Q(status="resolved") & (
        Q(first_response_at__isnull=True, first_response_due__gt=now, first_response_due__lte=soon)
        | Q(resolution_due__gt=now, resolution_due__lte=soon)
    )


class SavedReply(models.Model):
    """A canned answer operators insert into the composer with one click. Shared by the whole
    team and managed in the admin by operators."""

    title = models.CharField(max_length=80)
    body = models.TextField(max_length=4000)
    created_by = optional_user(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["title", "id"]
        verbose_name_plural = "saved replies"

    def __str__(self) -> str:
        return self.title


class InternalNote(models.Model):
    """A note operators leave for each other. Never a Message: it has no seq, so it cannot reach
    the customer's history, websocket, export or webhooks by any path that reads messages."""

    conversation = models.ForeignKey(
        "messaging.Conversation", on_delete=models.CASCADE, related_name="internal_notes"
    )
    # The hand-off the note was written during (None between escalations).
    escalation = models.ForeignKey(
        Escalation, on_delete=models.SET_NULL, null=True, blank=True, related_name="notes"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    note = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="note_conv_time")]

    def __str__(self) -> str:
        return f"Note {self.pk} on conversation {self.conversation_id}"


class Rating(models.Model):
    """A customer's satisfaction score for a resolved escalation (CSAT): one per escalation."""

    conversation = models.ForeignKey(
        "messaging.Conversation", on_delete=models.CASCADE, related_name="ratings"
    )
    escalation = models.OneToOneField(Escalation, on_delete=models.CASCADE, related_name="rating")
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True, max_length=1000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(score__gte=1) & Q(score__lte=5), name="rating_score_1_to_5"
            ),
        ]

    def __str__(self) -> str:
        return f"Rating {self.score} of escalation {self.escalation_id}"


class OperatorProfile(models.Model):
    """What routing knows of an operator beyond the account: the capacity auto-assignment
    respects, the "away" choice, and when they were last assigned an escalation (ties go to
    whoever waited longest). Created on first need; the row is also what auto-assignment locks
    to count an operator's open escalations without a race (escalations.assignment)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="operator_profile",
    )
    capacity = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Open escalations auto-assignment gives this operator at most; empty: the "
        "deployment's OPERATOR_CAPACITY.",
    )
    away = models.BooleanField(default=False)
    last_assigned_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "operator"

    def __str__(self) -> str:
        return f"Operator {self.user_id}"
