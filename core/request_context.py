"""The current request's id, visible to logging and security events without passing it around.

A ContextVar follows the request through sync views, async views and the threads asgiref hands
work to, so log lines written anywhere while serving a request carry its id.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

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


def _valid_ip(value: str | None) -> str | None:
    """`value` as a normalised IP address, or None when it is not one (a proxy header is
    text a client may have written: never use it unchecked as a key or a stored address)."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(meta: dict) -> str | None:
    """The client address used for rate limits and security events.

    With RATELIMIT_TRUSTED_PROXIES = 0 (the default) it is REMOTE_ADDR. With N proxies in
    front, each appending (or, like `make serve`'s nginx, setting) the address it saw to the
    header RATELIMIT_IP_META_KEY names (X-Forwarded-For by default), the client is the N-th
    entry counted from the right: entries further left were written by the client itself and
    prove nothing. A header with fewer entries, or an entry that is not an IP address, falls
    back to REMOTE_ADDR.
    """
    from django.conf import settings

    remote = _valid_ip(meta.get("REMOTE_ADDR"))
    trusted = int(getattr(settings, "RATELIMIT_TRUSTED_PROXIES", 0) or 0)
    if trusted <= 0:
        return remote
    key = getattr(settings, "RATELIMIT_IP_META_KEY", None) or "HTTP_X_FORWARDED_FOR"
    entries = [entry.strip() for entry in (meta.get(key) or "").split(",")]
    entries = [entry for entry in entries if entry]
    if len(entries) < trusted:
        return remote
    return _valid_ip(entries[-trusted]) or remote


@dataclass(frozen=True)
class CallContext:
    """Where a call came from, for rate limits and security events: the same facts whether the
    door was an HTTP request or a websocket, so services never need an HttpRequest."""

    path: str
    ip: str | None

    @classmethod
    def from_request(cls, request: Any) -> CallContext:
        return cls(path=request.path, ip=client_ip(request.META))

    @classmethod
    def from_scope(cls, scope: dict[str, Any]) -> CallContext:
        return cls(path=scope.get("path", ""), ip=client_ip(scope_meta(scope)))


def scope_meta(scope: dict[str, Any]) -> dict[str, str]:
    """A WSGI-style META dict from an ASGI scope, for `client_ip` (proxy header support)."""
    meta: dict[str, str] = {}
    client = scope.get("client")
    if client:
        meta["REMOTE_ADDR"] = str(client[0])
    for raw_name, raw_value in scope.get("headers", []):
        name = "HTTP_" + raw_name.decode("latin1").upper().replace("-", "_")
        meta[name] = raw_value.decode("latin1")
    return meta
