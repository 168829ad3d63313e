"""Regressions for what the attack run (`.ci/attack`, schemathesis) found, kept as fast tests so
they run on both CI passes (SQLite and PostgreSQL) without the fuzzer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from accounts.models import User

# Every status a parameter or body of the wrong shape can produce must be in the schema.
VALIDATION_STATUS = "422"


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


@pytest.mark.django_db
def test_operations_that_take_input_document_422(anonymous_client: Client) -> None:
    """ninja answers 422 for a path/query parameter or body it cannot parse; schemathesis'
    status_code_conformance fails on any operation that does not document it (found: POST
    /escalations/{conversation_id}/assign)."""
    schema = anonymous_client.get("/api/v1/openapi.json").json()
    missing = [
        f"{method} {path}"
        for method, path, operation in _operations(schema)
        if (
            any(p.get("in") in {"path", "query"} for p in operation.get("parameters", []))
            or "requestBody" in operation
        )
        and VALIDATION_STATUS not in operation.get("responses", {})
    ]
    assert missing == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "expires_at",
    [
        # ISO 8601 allows offsets up to ±23:59, PostgreSQL only ±15:59 ("time zone
        # displacement out of range" was a 500 on PostgreSQL).
        "2030-01-01T00:15:16+23:41",
        # Valid as written, but past datetime's range once converted to UTC.
        "9999-12-31T23:59:59-05:00",
    ],
)
def test_api_key_expiry_at_the_edges_is_not_a_server_error(
    superuser_client: Client, customer: User, expires_at: str
) -> None:
    created = superuser_client.post(
        "/api/v1/api-keys",
        data=json.dumps(
            {
                "name": "edge",
                "owner_id": customer.pk,
                "scopes": ["conversations:read"],
                "expires_at": expires_at,
            }
        ),
        content_type="application/json",
    )
    assert created.status_code in (201, 422), created.content
    listed = superuser_client.get("/api/v1/api-keys")
    assert listed.status_code == 200, listed.content
