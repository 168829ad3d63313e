"""Deny by default: every operation the API serves is either on the public list (docs/api.md)
or declares its tier and scopes. A route added without a policy fails here."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.auth import ApiKeyAuth, BearerAuth, Tier, policy_of
from config.api import api

# The public routes of docs/api.md (plus the OpenAPI schema and docs, which ninja serves outside the
# operations list).
PUBLIC = {
    ("POST", "/auth/token"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/register"),
    ("POST", "/auth/token/mfa"),  # the mfa_token from POST /auth/token is its credential
    ("GET", "/health"),
    ("GET", "/ready"),
}

# Routes that need only an authenticated account: their data is the caller's own.
ACCOUNT_ONLY = {
    ("POST", "/auth/revoke"),
    ("GET", "/auth/me"),
    ("DELETE", "/auth/me"),  # erasure asks for the password again
    ("POST", "/auth/mfa/totp"),  # the caller's own second factor (asks for the password)
    ("POST", "/auth/mfa/totp/confirm"),
    ("DELETE", "/auth/mfa/totp"),
    ("GET", "/auth/sessions"),  # the caller's own sessions
    ("DELETE", "/auth/sessions"),
    ("DELETE", "/auth/sessions/{session_id}"),
    ("POST", "/auth/password"),  # asks for the current password
}


def _operations() -> list[tuple[str, str, object]]:
    return [
        (method, path, operation)
        for path, operation in api.iter_operations()
        for method in operation.methods
    ]


def test_the_api_is_not_empty() -> None:
    assert len(_operations()) >= 15


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    _operations(),
    ids=[f"{m} {p}" for m, p, _ in _operations()],
)
def test_every_operation_has_a_policy(method: str, path: str, operation: object) -> None:
    callbacks = operation.auth_callbacks  # type: ignore[attr-defined]
    if (method, path) in PUBLIC:
        assert not callbacks, f"{method} {path} is on the public list but requires auth"
        return
    assert callbacks, f"{method} {path} is public but not on the public list (docs/api.md)"
    assert {type(cb) for cb in callbacks} == {BearerAuth, ApiKeyAuth}
    policy = policy_of(callbacks)
    assert policy is not None, f"{method} {path} mixes policies"
    assert policy.declared, f"{method} {path} relies on the API default; declare Customer/Staff/…"
    if (method, path) not in ACCOUNT_ONLY:
        assert policy.scopes or policy.tier is not Tier.CUSTOMER, (
            f"{method} {path} declares neither a scope nor a staff/superuser tier"
        )


def test_no_public_route_is_missing() -> None:
    served = {(m, p) for m, p, _ in _operations()}
    assert served >= PUBLIC


@pytest.mark.django_db
def test_every_protected_operation_refuses_anonymous_callers() -> None:
    client = Client()
    for method, path, _operation in _operations():
        if (method, path) in PUBLIC:
            continue
        url = "/api/v1" + path.replace("{conversation_id}", "1").replace(
            "{customer_id}", "1"
        ).replace("{api_key_id}", "1").replace("{webhook_id}", "1").replace("{session_id}", "1")
        response = client.generic(method, url, "{}", content_type="application/json")
        assert response.status_code == 401, f"{method} {url} → {response.status_code}"
        assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.django_db
def test_openapi_declares_security_and_scopes() -> None:
    schema = Client().get("/api/v1/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["ApiKeyAuth"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["BearerAuth"]["type"] == "oauth2"
    assert schemes["BearerAuth"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    process = schema["paths"]["/api/v1/messages/process"]["post"]
    assert {"BearerAuth": ["messages:write"]} in process["security"]
    assert {"ApiKeyAuth": []} in process["security"]
    assert "security" not in schema["paths"]["/api/v1/auth/token"]["post"]


@pytest.mark.django_db
def test_docs_page_is_served_without_inline_script() -> None:
    response = Client().get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn." not in html
    assert "<script>" not in html.replace(" ", "")
