"""django-tasks tasks (database backend). Task arguments are ids only: the rows they name are
the truth, so a task that outlived its row does nothing."""

from __future__ import annotations

from django_tasks import task

from integrations.delivery import WEBHOOK_QUEUE, webhook_attempt_run


@task(queue_name=WEBHOOK_QUEUE)
def webhook_attempt(delivery_id: int) -> str:
    """One delivery attempt (integrations.delivery.webhook_attempt_run)."""
    return webhook_attempt_run(delivery_id)
