"""Idempotency-Key on POST /messages/process (docs/api.md)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import User
from messaging import idempotency
from messaging.models import Conversation, IdempotencyRecord, Message
from tests.conftest import issue_access_token
from tests.messages import post_message


def send(
    client: Client,
    customer: User,
    message: str,
    key: str | None,
    conversation_id: int | None = None,
) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return post_message(client, customer, message, conversation_id, **headers)


@pytest.mark.django_db
def test_same_key_replays_the_first_response_and_writes_nothing(
    customer_client: Client, customer: User
) -> None:
    first = send(customer_client, customer, "I was charged twice", "key-1")
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first
    messages_before = Message.objects.count()
    again = send(customer_client, customer, "I was charged twice", "key-1")
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Message.objects.count() == messages_before
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_same_key_with_a_different_body_is_422(customer_client: Client, customer: User) -> None:
    send(customer_client, customer, "first text", "key-2")
    response = send(customer_client, customer, "second text", "key-2")
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "idempotency_key_reused"
    assert Message.objects.filter(role="customer").count() == 1


@pytest.mark.django_db
def test_keys_are_per_user(customer: User, other_customer: User, client_for: Any) -> None:
    a = send(client_for(customer), customer, "hello", "shared-key")
    b = send(client_for(other_customer), other_customer, "hello", "shared-key")
    assert a.status_code == b.status_code == 200
    assert "Idempotent-Replayed" not in b
    assert a.json()["conversation_id"] != b.json()["conversation_id"]


@pytest.mark.django_db
def test_request_in_flight_is_409(customer_client: Client, customer: User) -> None:
    fingerprint = idempotency.request_fingerprint(
        {"customer_id": customer.pk, "conversation_id": None, "message": "hello"}
    )
    IdempotencyRecord.objects.create(user=customer, key="busy", fingerprint=fingerprint)
    response = send(customer_client, customer, "hello", "busy")
    assert response.status_code == 409
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_abandoned_claim_is_taken_over(customer_client: Client, customer: User) -> None:
    fingerprint = idempotency.request_fingerprint(
        {"customer_id": customer.pk, "conversation_id": None, "message": "hello"}
    )
    IdempotencyRecord.objects.create(
        user=customer,
        key="crashed",
        fingerprint=fingerprint,
        created_at=timezone.now() - timedelta(minutes=10),
    )
    response = send(customer_client, customer, "hello", "crashed")
    assert response.status_code == 200
    assert IdempotencyRecord.objects.get().state == "completed"


@pytest.mark.django_db
def test_key_older_than_24h_no_longer_replays(customer_client: Client, customer: User) -> None:
    send(customer_client, customer, "hello", "old-key")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    response = send(customer_client, customer, "hello", "old-key")
    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response
    assert Conversation.objects.count() == 2


@pytest.mark.django_db
def test_failed_request_frees_the_key(customer_client: Client, customer: User) -> None:
    missing = send(customer_client, customer, "hello", "retry-me", conversation_id=999999)
    assert missing.status_code == 404
    assert IdempotencyRecord.objects.count() == 0
    assert send(customer_client, customer, "hello", "retry-me").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256])
def test_bad_key_is_422(customer_client: Client, customer: User, key: str) -> None:
    assert send(customer_client, customer, "hello", key).status_code == 422
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_expired_records_are_pruned(customer: User) -> None:
    IdempotencyRecord.objects.create(
        user=customer, key="old", fingerprint="f", created_at=timezone.now() - timedelta(days=2)
    )
    IdempotencyRecord.objects.create(user=customer, key="new", fingerprint="f")
    assert idempotency.idempotency_prune() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_write_once(customer: User) -> None:
    token = issue_access_token(customer)
    barrier = threading.Barrier(8)
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        client = Client(headers={"Authorization": f"Bearer {token}"})
        try:
            barrier.wait()
            response = send(client, customer, "exactly once please", "race-key")
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Message.objects.filter(role="customer").count() == 1
    assert Conversation.objects.count() == 1
    assert statuses.count(200) >= 1
    assert set(statuses) <= {200, 409}


@pytest.mark.django_db
def test_replay_body_is_byte_identical(customer_client: Client, customer: User) -> None:
    first = send(customer_client, customer, "let me talk to a person", "key-bytes")
    again = send(customer_client, customer, "let me talk to a person", "key-bytes")
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content


@pytest.mark.django_db
def test_a_record_stored_as_a_rest_body_still_replays(
    customer_client: Client, customer: User
) -> None:
    """Records written before results were stored as domain records held the REST body."""
    from messaging.schemas import process_out
    from messaging.services import MessageSendResult

    first = send(customer_client, customer, "I was charged twice", "key-legacy")
    record = IdempotencyRecord.objects.get(key="key-legacy")
    stored = MessageSendResult.from_record(record.response_body, replayed=False, rate=None)
    IdempotencyRecord.objects.filter(pk=record.pk).update(response_body=process_out(stored))

    again = send(customer_client, customer, "I was charged twice", "key-legacy")

    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
