from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

# Ids outside 1..MAX_ID name no row; lookups treat them as missing before they reach the
# database, where they would overflow a bigint. Defined once in core/ids.py, re-exported.
from core.ids import MAX_ID as MAX_ID
from core.ids import is_possible_id as is_possible_id
from core.modelfields import optional_user


class Conversation(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        ESCALATED = "escalated"
        RESOLVED = "resolved"

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Customer messages so far ("turns").
    turn_count = models.PositiveIntegerField(default=0)
    # Customer turns the agent has answered since the conversation began or an operator last
    # handed it back; the agent's turn limit counts these, so a resolved conversation does not
    # bounce straight back to a human on the customer's next message.
    agent_turns = models.PositiveIntegerField(default=0)
    # The seq of the newest message. Written only under the conversation's row lock, so seq is
    # gap-free and unique per conversation even with concurrent writers.
    last_seq = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            # GET /conversations: a customer's conversations, newest activity first (keyset).
            models.Index(fields=["customer", "-updated_at", "-id"], name="conv_customer_activity"),
            models.Index(fields=["status"], name="conv_status"),
        ]

    def __str__(self) -> str:
        return f"Conversation {self.pk} ({self.status})"


class Message(models.Model):
    class Role(models.TextChoices):
        CUSTOMER = "customer"
        AGENT = "agent"
        OPERATOR = "operator"
        SYSTEM = "system"

    # No index of its own: the (conversation, seq) unique index leads with it and serves every
    # lookup by conversation (history, context, cascade deletes); a second index only cost
    # each INSERT one more B-tree to update.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()
    intent = models.CharField(max_length=32, blank=True, null=True)
    confidence = models.FloatField(null=True, blank=True)
    # Who wrote it, for operator messages (customer messages: the conversation's customer).
    author = optional_user()
    # Client-safe facts about the reply (e.g. {"fallback": true}); never prompts or internals.
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique"),
            models.CheckConstraint(condition=Q(seq__gte=1), name="message_seq_positive"),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True)
                | (Q(confidence__gte=0) & Q(confidence__lte=1)),
                name="message_confidence_range",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.role}: {self.content[:40]}"


class IdempotencyRecord(models.Model):
    """One per (user, Idempotency-Key): the first request's fingerprint and, once it finished,
    its response. Stored in the database so replays hold across workers and restarts."""

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key} ({self.state})"
