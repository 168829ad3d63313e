"""The current request's id, visible to logging and security events without passing it around.

A ContextVar follows the request through sync views, async views and the threads asgiref hands
work to, so log lines written anywhere while serving a request carry its id.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("parley_request_id", default=None)

# Accept a caller's id only when it is short and plain, so logs cannot be forged or flooded.
_WELL_FORMED_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def request_id_from_header(value: str | None) -> str:
    """Keep a well-formed incoming X-Request-ID, else make a new UUID."""
    if value and _WELL_FORMED_ID.match(value):
        return value
    return str(uuid.uuid4())


def current_request_id() -> str | None:
    return request_id_var.get()


def client_ip(meta: dict) -> str | None:
    """The client address used for rate limits and security events. REMOTE_ADDR unless
    RATELIMIT_IP_META_KEY names the header a trusted proxy sets (see docs/operations.md)."""
    from django.conf import settings

    key = getattr(settings, "RATELIMIT_IP_META_KEY", None) or "REMOTE_ADDR"
    value = (meta.get(key) or "").split(",")[0].strip()
    return value or None
