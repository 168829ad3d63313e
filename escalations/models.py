from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Escalation(models.Model):
    """A hand-off of a conversation from the agent to human operators."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ASSIGNED = "assigned", "Assigned"
        RESOLVED = "resolved", "Resolved"

    conversation = models.ForeignKey(
        "messaging.Conversation", on_delete=models.CASCADE, related_name="escalations"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    reason = models.CharField(max_length=255)
    # What the agent believed at hand-off, for operators and statistics.
    intent = models.CharField(max_length=32, blank=True, null=True)
    confidence = models.FloatField(null=True, blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_escalations",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="resolved_escalations",
    )
    resolution_notes = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"],
                condition=~Q(status="resolved"),
                name="one_unresolved_escalation_per_conversation",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at", "id"], name="esc_status_age")]

    def __str__(self) -> str:
        return f"Escalation {self.pk} of conversation {self.conversation_id} ({self.status})"


class SavedReply(models.Model):
    """A canned answer operators insert into the composer with one click. Shared by the whole
    team and managed in the admin by operators."""

    title = models.CharField(max_length=80)
    body = models.TextField(max_length=4000)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
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
