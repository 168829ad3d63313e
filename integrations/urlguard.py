"""Outbound requests to customer-chosen URLs without SSRF.

A webhook URL is chosen by whoever holds the `admin` scope, but it is fetched from inside the
network, where it could reach the cloud metadata service, the database or an admin port. So:
resolve the host once, refuse if ANY address is not a public unicast one, and connect to the
address that was checked — a second lookup (the HTTP library's own) could answer differently
(DNS rebinding). Redirects are never followed: a 3xx is just a failed attempt.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings

ALLOWED_SCHEMES = ("http", "https")
# Certificates are verified against the system's trust store, for the URL's host name (not the
# address connected to). Tests swap in a context that trusts their own certificate.
TLS_VERIFY: ssl.SSLContext | bool = True


class UnsafeUrl(ValueError):
    """The URL may not be called: bad shape, unresolvable, or a non-public address.

    `retryable`: a failed lookup may succeed later; a refused address or shape will not."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class CheckedTarget:
    scheme: str
    host: str  # as written in the URL (for Host and SNI)
    port: int
    address: str  # the checked IP to connect to
    path: str  # path + query


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    # is_global is False for private, loopback, link-local, reserved, unspecified and shared
    # (100.64/10) ranges; multicast needs its own check.
    return ip.is_global and not ip.is_multicast


def host_allowed(host: str) -> bool:
    """WEBHOOK_ALLOWED_HOSTS, when set, limits webhooks to those hosts and their subdomains —
    checked before any DNS lookup, so a refused name is never even resolved."""
    allowed = settings.WEBHOOK_ALLOWED_HOSTS
    if not allowed:
        return True
    host = host.lower().rstrip(".")
    return any(host == entry or host.endswith(f".{entry}") for entry in allowed)


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"Cannot resolve host {host!r}", retryable=True) from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UnsafeUrl(f"Cannot resolve host {host!r}", retryable=True)
    return addresses


def url_check(url: str) -> CheckedTarget:
    """Parse and resolve `url`; raise UnsafeUrl unless every address it resolves to is public
    (or WEBHOOK_ALLOW_PRIVATE_HOSTS is on, for local development and tests)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("Not a valid URL") from exc
    if parts.scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrl("Only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("Credentials in the URL are not allowed")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("The URL has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    if not host_allowed(host):
        raise UnsafeUrl(f"Host {host!r} is not in WEBHOOK_ALLOWED_HOSTS")
    addresses = _resolve(host, port)
    if not settings.WEBHOOK_ALLOW_PRIVATE_HOSTS:
        refused = [a for a in addresses if not address_is_public(a)]
        if refused:
            raise UnsafeUrl(
                f"Host {host!r} resolves to a non-public address; webhooks only call public hosts"
            )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return CheckedTarget(scheme=parts.scheme, host=host, port=port, address=addresses[0], path=path)


def guarded_post(
    url: str, *, content: bytes, headers: dict[str, str], timeout: float
) -> httpx.Response:
    """POST to `url` after `url_check`, connecting to the checked address. Never follows
    redirects, ignores proxy environment variables. Raises UnsafeUrl or httpx errors."""
    target = url_check(url)
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    if target.port != default_port:
        host_header = f"{host_header}:{target.port}"
    ip_url = httpx.URL(scheme=target.scheme, host=target.address, port=target.port).join(
        target.path
    )
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    with httpx.Client(
        follow_redirects=False, trust_env=False, timeout=timeout, verify=TLS_VERIFY
    ) as client:
        request = client.build_request(
            "POST",
            ip_url,
            content=content,
            headers={**headers, "Host": host_header},
            extensions=extensions,
        )
        # Only the status matters: the body is never read, so a receiver cannot hold the
        # worker (or its memory) with a large or endless one.
        response = client.send(request, stream=True)
        response.close()
        return response
