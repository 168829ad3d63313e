"""Webhook attempts share one TLS context per process."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from integrations import urlguard
from tests.receiver import Receiver


def test_attempts_share_one_verifying_context(
    monkeypatch: pytest.MonkeyPatch, local_webhooks: Any, receiver: Receiver
) -> None:
    """Building a verifying context loads the whole CA bundle (about 19 ms of CPU, more than
    the rest of a delivery: docs/operations.md, "The webhook queue"); httpx builds one for every
    client unless it is handed one. Three attempts make it once, and it verifies."""
    made: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    urlguard.tls_context.cache_clear()
    for _ in range(3):
        response = urlguard.guarded_post(
            receiver.url(), content=b"{}", headers={"content-type": "application/json"}, timeout=5
        )
        assert response.status_code == 200
    assert len(receiver.requests) == 3
    assert len(made) == 1
    assert made[0].verify_mode == ssl.CERT_REQUIRED
    assert made[0].check_hostname is True
    urlguard.tls_context.cache_clear()
