"""Webhooks: endpoints, the transactional outbox of events, and one row per delivery attempt.

The outbox row (`WebhookEvent`) is written in the transaction of the change that caused it, so
it exists exactly when the change committed — provided an endpoint was active to receive it
(the INSERT's own condition, integrations.delivery.outbox_write). Everything after that —
fan-out to endpoints, attempts, retries — is driven from these rows by the worker
(integrations.delivery), never from memory, so a crash between commit and delivery loses
nothing.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.fieldcrypt import EncryptedTextField
from core.modelfields import optional_user

# The one maker of event ids (also used by the statements that write a change's events); this
# name is the field default's path in the migrations.
from messaging.events import new_event_id as new_event_id


class WebhookEndpoint(models.Model):
    """A receiver URL subscribed to some event types.

    Signing needs the secret itself, so it is stored encrypted (recoverable), not hashed:
    under FIELD_ENCRYPTION_KEYS (core.fieldcrypt), which live in the environment, not the
    database — a leaked dump or backup holds no usable secret. It is never shown again after
    creation (API and admin), never logged, and excluded from every schema but the creation
    response.
    """

    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)
    description = models.CharField(max_length=500, blank=True)
    secret = EncryptedTextField(editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = optional_user(editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.url


class WebhookEvent(models.Model):
    """The outbox: one row per domain event, written inside the change's transaction."""

    event_id = models.CharField(max_length=40, unique=True, default=new_event_id, editable=False)
    type = models.CharField(max_length=40)
    payload = models.JSONField()
    # The customer the event is about. Erasing them deletes the event and, by cascade, its
    # pending deliveries: their data must not leave Parley after they asked to be forgotten.
    customer = optional_user(on_delete=models.CASCADE)
    created_at = models.DateTimeField(default=timezone.now)
    # Set once the worker has created this event's deliveries (fan-out).
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # The sweeper's scan: undispatched events, oldest first.
            models.Index(
                fields=["created_at", "id"],
                name="webhook_event_undispatched",
                condition=Q(dispatched_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class WebhookDelivery(models.Model):
    """One attempt to deliver one event to one endpoint. A retry is a new row (attempt + 1),
    so the history of every attempt stays visible."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # waiting for its time / a worker
        SENDING = "sending", "Sending"  # claimed by a worker (until lease_until)
        DELIVERED = "delivered", "Delivered"  # 2xx
        RETRYING = "retrying", "Failed, retry scheduled"  # the next attempt is a new row
        FAILED = "failed", "Failed"  # the last attempt failed; no more retries

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    delivered = models.BooleanField(default=False)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # While pending: when the sweeper may assume the queued task was lost and queue another.
    # While sending: when the claim expires (a worker that died mid-request).
    lease_until = models.DateTimeField(default=timezone.now)
    claim_token = models.CharField(max_length=32, blank=True)
    # The django-tasks task queued for this attempt: the sweeper re-queues only when that task
    # is gone or finished, never beside one still waiting in a long queue.
    task_id = models.CharField(max_length=64, blank=True)
    attempted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event", "attempt"], name="webhook_delivery_attempt_unique"
            )
        ]
        indexes = [
            models.Index(fields=["endpoint", "-created_at", "-id"], name="webhook_delivery_page"),
            models.Index(
                fields=["lease_until"],
                name="webhook_delivery_open",
                condition=Q(status__in=["pending", "sending"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id} #{self.attempt} ({self.status})"
