"""Changes the integration tests run through the real services, written once."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.models import User
from escalations import services as escalation_services
from escalations.models import Escalation
from integrations.delivery import webhook_outbox_sweep
from integrations.models import WebhookDelivery, WebhookEndpoint
from tests.messages import sent_directly

HUMAN = "I want to talk to a human agent please"


def escalation_lifecycle(customer: User, operator: User) -> int:
    """A new conversation that escalates, is assigned, answered late and resolved: its id.
    Records conversation.created, message.created (customer, agent, system, operator) and
    escalation.opened / assigned / sla_breached / resolved."""
    body = sent_directly(customer, HUMAN)
    assert body["status"] == "escalated"
    conversation_id: int = body["conversation_id"]
    escalation_services.escalation_assign(conversation_id=conversation_id, actor=operator)
    # Past its first-response due time, so the reply below is late: escalation.sla_breached.
    Escalation.objects.filter(conversation_id=conversation_id).update(
        first_response_due=timezone.now() - timedelta(minutes=1)
    )
    escalation_services.escalation_reply(
        conversation_id=conversation_id, actor=operator, text="Hello, I am here to help."
    )
    escalation_services.escalation_resolve(
        conversation_id=conversation_id, actor=operator, notes="Sorted out"
    )
    return conversation_id


def delivery_queued(customer: User, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A new conversation of `customer`, swept: `endpoint`'s one delivery (its task queued,
    no worker run yet). `endpoint` takes conversation.created only."""
    sent_directly(customer, "hello there")
    webhook_outbox_sweep()
    return WebhookDelivery.objects.get(endpoint=endpoint)
