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
