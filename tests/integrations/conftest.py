"""A real HTTP receiver on 127.0.0.1 (tests/receiver.py) and helpers to run the webhook worker
in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from accounts.models import User
from integrations import services
from integrations.delivery import WEBHOOK_QUEUE, worker_run_until_idle
from integrations.models import WebhookEndpoint
from messaging.events import EVENT_TYPES
from tests.receiver import Receiver, receiver_running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiver_running() as running:
        yield running


@pytest.fixture
def local_webhooks(settings: Any) -> Any:
    """The local receiver is on loopback: allowed only in these tests."""
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0  # retries are due at once; the worker drains them
    settings.WEBHOOK_TIMEOUT_SECONDS = 5
    return settings


@pytest.fixture
def endpoint_for(
    local_webhooks: Any, superuser: User
) -> Callable[..., tuple[WebhookEndpoint, str]]:
    def make(url: str, events: tuple[str, ...] = EVENT_TYPES) -> tuple[WebhookEndpoint, str]:
        return services.webhook_endpoint_create(actor=superuser, url=url, events=list(events))

    return make


@pytest.fixture
def conversation_hook(receiver: Receiver, endpoint_for: Callable[..., Any]) -> WebhookEndpoint:
    """An endpoint at the receiver's /hook taking conversation.created only: one event, and so
    one delivery, per new conversation."""
    endpoint, _secret = endpoint_for(receiver.url(), events=("conversation.created",))
    return endpoint  # type: ignore[no-any-return]


@pytest.fixture
def drain() -> Callable[[], None]:
    """Run the worker until every due delivery has been attempted."""

    def run() -> None:
        from django_tasks_db.models import DBTaskResult

        worker_run_until_idle(worker_id="test-worker")
        # The task runner records exceptions instead of raising them: surface them here.
        failed = list(
            DBTaskResult.objects.filter(status="FAILED").values_list("traceback", flat=True)
        )
        assert failed == []

    return run


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """The broker's Redis, its webhook queue empty before and after."""
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    client.delete(WEBHOOK_QUEUE, "unacked", "unacked_index")
    yield client
    client.delete(WEBHOOK_QUEUE, "unacked", "unacked_index")
    client.close()
