"""Bad input to POST /messages/process: a clear 4xx, no internals, nothing written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from messaging.models import Conversation, Message

PROCESS = "/api/v1/messages/process"


def _post(client: Client, body: Any) -> Any:
    raw = body if isinstance(body, str) else json.dumps(body)
    return client.post(PROCESS, raw, content_type="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "message",
    [
        "",
        "   ",
        "\n\t  \n",
        "x" * 4001,
        "null byte \x00 here",
        "bell \x07",
        "esc \x1b[31m",
        "lone \ud800 surrogate",
    ],
    ids=["empty", "spaces", "whitespace", "4001-chars", "nul", "bell", "ansi-escape", "surrogate"],
)
def test_bad_message_text_is_422(customer_client: Client, customer: User, message: str) -> None:
    response = _post(customer_client, {"message": message, "customer_id": customer.pk})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail[0]["loc"][-1] == "message"
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_message_is_trimmed_and_4000_chars_is_accepted(
    customer_client: Client, customer: User
) -> None:
    text = "a" * 4000
    response = _post(customer_client, {"message": f"  {text}\n ", "customer_id": customer.pk})
    assert response.status_code == 200
    assert Message.objects.get(role="customer").content == text


@pytest.mark.django_db
def test_newlines_and_tabs_are_kept(customer_client: Client, customer: User) -> None:
    response = _post(
        customer_client, {"message": "line one\r\n\tline two", "customer_id": customer.pk}
    )
    assert response.status_code == 200
    assert Message.objects.get(role="customer").content == "line one\n\tline two"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"customer_id": 1},
        {"message": "hi"},
        {"message": 5, "customer_id": 1},
        {"message": "hi", "customer_id": "one"},
        {"message": "hi", "customer_id": 1, "conversation_id": -1},
        {"message": "hi", "customer_id": 1, "conversation_id": "x"},
        {"message": "hi", "customer_id": 1, "role": "agent"},
        {"message": "hi", "customer_id": 1, "status": "resolved"},
        {"message": "hi", "customer_id": 2**70},
    ],
    ids=[
        "empty",
        "no-message",
        "no-customer",
        "message-int",
        "customer-str",
        "negative-conv",
        "conv-str",
        "unknown-role",
        "unknown-status",
        "huge-customer-id",
    ],
)
def test_malformed_bodies_are_422(customer_client: Client, body: dict[str, Any]) -> None:
    response = _post(customer_client, body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
    assert Conversation.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["{broken", "", "[]", "null", '"string"'])
def test_broken_json_is_4xx_without_internals(customer_client: Client, raw: str) -> None:
    response = _post(customer_client, raw)
    assert response.status_code in (400, 422)
    text = response.content.decode()
    assert "Traceback" not in text
    assert 'File "' not in text
    assert Conversation.objects.count() == 0


@pytest.mark.django_db
def test_huge_conversation_id_is_422_not_500(customer_client: Client, customer: User) -> None:
    response = _post(
        customer_client, {"message": "hi", "customer_id": customer.pk, "conversation_id": 2**64}
    )
    assert response.status_code == 422


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=abc", "after_seq=-1", "before_seq=0", f"after_seq={2**70}"],
)
def test_bad_history_parameters_are_422(customer_client: Client, query: str) -> None:
    response = customer_client.get(f"/api/v1/conversations/1/history?{query}")
    assert response.status_code == 422


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["limit=0", "limit=101", "cursor=%%%"])
def test_bad_list_parameters_are_4xx(customer_client: Client, query: str) -> None:
    response = customer_client.get(f"/api/v1/conversations?{query}")
    assert response.status_code in (400, 422)


@pytest.mark.django_db
@pytest.mark.parametrize("cursor", ["bm9wZQ", "W10", "WyJ4IiwgMV0", "WyIyMDI2LTAxLTAxIiwgIngiXQ"])
def test_tampered_cursor_is_400(customer_client: Client, cursor: str) -> None:
    response = customer_client.get(f"/api/v1/conversations?cursor={cursor}")
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid cursor"}


@pytest.mark.django_db
def test_huge_path_id_is_404_not_500(customer_client: Client) -> None:
    response = customer_client.get(f"/api/v1/conversations/{2**70}/history")
    assert response.status_code in (404, 422)
