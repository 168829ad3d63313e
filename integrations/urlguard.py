"""Outbound requests to customer-chosen URLs without SSRF.

A webhook URL is chosen by whoever holds the `admin` scope, but it is fetched from inside the
network, where it could reach the cloud metadata service, the database or an admin port. So:

- the URL is taken apart once (`url_check`) into checked parts: scheme, host (as an ASCII name
  or an IP literal in its one canonical spelling), port, path and query;
- the host is resolved once, and the URL is refused if ANY address is not public
  (`address_is_public`, one rule for creation and delivery);
- the request is built from those parts (`guarded_post`): it connects to the checked address,
  names the checked host in `Host` and SNI, and sends the path as a path. Nothing re-parses a
  URL after the check: joining a path such as `//169.254.169.254/x` onto the address would
  read it as a network-path reference and replace the host.

A second lookup (the HTTP library's own) could answer differently (DNS rebinding), so none is
made. Redirects are never followed: a 3xx is just a failed attempt.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpx
from django.conf import settings

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
# Certificates are verified against the system's trust store, for the URL's host name (not the
# address connected to). Tests swap in a context that trusts their own certificate.
TLS_VERIFY: ssl.SSLContext | bool = True


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verifying context of every attempt (when TLS_VERIFY is True), made once per process.
    Left to itself httpx builds a fresh one for each client, loading the whole CA bundle: about
    19 ms of CPU per webhook attempt, more than half of what a worker spent on a delivery
    (docs/operations.md, "The webhook queue"). It is httpx's own default (certifi's bundle),
    built the same way; a context is safe to share between threads."""
    return httpx.create_ssl_context(trust_env=False)


_QUERY_SAFE = "/?:@!$&'()*+,;=%"
# IPv6 ranges refused outright, whatever they embed or route to. Python's `is_global` misses
# some (e.g. it calls ::a9fe:a9fe — 169.254.169.254 in the deprecated IPv4-compatible form —
# global), and its answers differ between Python releases; this list does not.
_REFUSED_IPV6 = tuple(
    ipaddress.IPv6Network(network)
    for network in (
        "::/96",  # IPv4-compatible (deprecated): ::a9fe:a9fe is 169.254.169.254
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b::/96",  # NAT64, well-known prefix: reaches the embedded IPv4 address
        "64:ff9b:1::/48",  # NAT64, local-use prefix
        "100::/64",  # discard-only
        "2001::/32",  # Teredo: tunnels to the embedded IPv4 server and client
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: routes to the embedded IPv4 address
        "fc00::/7",  # unique local (ULA)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated, still routed inside some networks)
        "ff00::/8",  # multicast
    )
)
# Global unicast is 2000::/3; everything outside it is reserved, local or special.
_GLOBAL_UNICAST_IPV6 = ipaddress.IPv6Network("2000::/3")


class UnsafeUrl(ValueError):
    """The URL may not be called: bad shape, unresolvable, or a non-public address.

    `retryable`: a failed lookup may succeed later; a refused address or shape will not."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class CheckedTarget:
    """Everything a request needs, each part checked: nothing is parsed again to send it."""

    scheme: str
    host: str  # ASCII: a DNS name (IDNA-encoded) or an IP literal's canonical text
    port: int
    address: str  # the checked IP to connect to
    path: str  # the URL's path, as written ("/" when empty); a path, never a URL
    query: str  # the URL's query, without "?"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def address_is_public(address: str) -> bool:
    """The one address rule, for creation and delivery alike: a public unicast address.

    IPv4: `is_global` (no private, loopback, link-local, shared 100.64/10, reserved, benchmark
    or "this network" address) and not multicast. IPv6: global unicast (2000::/3), `is_global`,
    and in none of the ranges above — every form that embeds or tunnels to an IPv4 address
    (mapped, compatible, translated, NAT64, 6to4, Teredo) is refused, as are ULA, site-local,
    link-local and multicast. An address with a zone id (`fe80::1%eth0`) names an interface of
    this machine: refused. Anything that is not an IP address is refused."""
    if "%" in address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return ip.is_global and not ip.is_multicast
    return (
        ip in _GLOBAL_UNICAST_IPV6
        and ip.is_global
        and not any(ip in network for network in _REFUSED_IPV6)
    )


def host_allowed(host: str) -> bool:
    """WEBHOOK_ALLOWED_HOSTS, when set, limits webhooks to those hosts and their subdomains —
    checked on the URL's own host, before any DNS lookup, so a refused name is never even
    resolved (and, since the request goes to exactly this host, never reached another way)."""
    allowed = settings.WEBHOOK_ALLOWED_HOSTS
    if not allowed:
        return True
    host = host.lower().rstrip(".")
    return any(host == entry or host.endswith(f".{entry}") for entry in allowed)


def _ipv4_number(part: str) -> int | None:
    """One part of an IPv4 address as the C resolver reads it: decimal, 0x hex or 0 octal."""
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part, 8)
        return int(part, 10) if part.isascii() and part.isdigit() else None
    except ValueError:
        return None


def _ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """`host` as an IPv4 address in any spelling `inet_aton` accepts (and so the resolver
    would connect to): 127.0.0.1, 2130706433, 0x7f.1, 0177.0.0.01, 127.1 — or None."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or any(part == "" for part in parts):
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(parts)):  # type: ignore[operator]
        return None
    value = 0
    for number in leading:
        value = value * 256 + number  # type: ignore[operator]
    value = value * 256 ** (5 - len(parts)) + last  # type: ignore[operator]
    return ipaddress.IPv4Address(value)


def _canonical_host(raw: str) -> tuple[str, str | None]:
    """(host, address): the ASCII host to send in Host/SNI, and its address when the host is
    an IP literal (then no lookup is made). Raises UnsafeUrl."""
    host = raw[:-1] if raw.endswith(".") else raw  # the root label: "example.com." is a name
    if ":" in host:  # an IPv6 literal ([...] already removed by urlsplit)
        if "%" in host:
            raise UnsafeUrl("IPv6 zone ids are not allowed in webhook URLs")
        try:
            ip6 = ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeUrl("Not a valid IPv6 address") from None
        return str(ip6), str(ip6)
    if not host.isascii():
        try:
            # IDNA 2003, as the resolver itself encodes names (NFKC: "①②⑦.0.0.1" is 127.0.0.1)
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UnsafeUrl("Not a valid host name") from None
    ip4 = _ipv4_literal(host)
    if ip4 is not None:
        return str(ip4), str(ip4)
    return host.lower(), None


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
    """Take `url` apart, resolve its host, and return the checked target; raise UnsafeUrl
    unless every address it resolves to is public (or WEBHOOK_ALLOW_PRIVATE_HOSTS is on, for
    local development and tests) and the host is allowed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("Not a valid URL") from exc
    if parts.scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrl("Only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("Credentials in the URL are not allowed")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host")
    host, literal = _canonical_host(parts.hostname)
    port = port or DEFAULT_PORTS[parts.scheme]
    if not host_allowed(host):
        raise UnsafeUrl(f"Host {host!r} is not in WEBHOOK_ALLOWED_HOSTS")
    addresses = [literal] if literal is not None else _resolve(host, port)
    if not settings.WEBHOOK_ALLOW_PRIVATE_HOSTS:
        if any(not address_is_public(address) for address in addresses):
            raise UnsafeUrl(
                f"Host {host!r} resolves to a non-public address; webhooks only call public hosts"
            )
    return CheckedTarget(
        scheme=parts.scheme,
        host=host,
        port=port,
        address=addresses[0],
        path=parts.path or "/",
        query=parts.query,
    )


def request_url(target: CheckedTarget) -> httpx.URL:
    """The request's URL from the checked parts — the address as the host, the path as a path
    — verified to name exactly that address, port and scheme before anything is sent."""
    try:
        url = httpx.URL(
            scheme=target.scheme,
            host=target.address,
            port=target.port,
            path=target.path,
            # Percent-encoded as the path is (escapes and reserved characters kept).
            query=quote(target.query, safe=_QUERY_SAFE).encode("ascii") if target.query else None,
        )
    except httpx.InvalidURL:
        raise UnsafeUrl("Not a valid URL") from None
    checked_host = ipaddress.ip_address(target.address)
    if (
        url.scheme != target.scheme
        or ipaddress.ip_address(url.host) != checked_host
        or (url.port or DEFAULT_PORTS[url.scheme]) != target.port
        or not url.raw_path.startswith(b"/")
    ):
        raise UnsafeUrl("The request would not go to the checked address")
    return url


def guarded_post(
    url: str, *, content: bytes, headers: dict[str, str], timeout: float
) -> httpx.Response:
    """POST to `url` after `url_check`, connecting to the checked address. Never follows
    redirects, ignores proxy environment variables. Raises UnsafeUrl or httpx errors."""
    target = url_check(url)
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    with httpx.Client(
        follow_redirects=False,
        trust_env=False,
        timeout=timeout,
        verify=tls_context() if TLS_VERIFY is True else TLS_VERIFY,
    ) as client:
        request = client.build_request(
            "POST",
            request_url(target),
            content=content,
            headers={**headers, "Host": target.host_header},
            extensions=extensions,
        )
        # Only the status matters: the body is never read, so a receiver cannot hold the
        # worker (or its memory) with a large or endless one.
        response = client.send(request, stream=True)
        response.close()
        return response
