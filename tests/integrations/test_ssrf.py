"""SSRF: webhook URLs that resolve to a non-public address are refused when created (422) and
when delivered, and no connection is ever attempted. Name resolution is patched; every
connect is patched to fail the test, so nothing here can reach a private or public address."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from integrations.delivery import worker_run_until_idle
from integrations.models import WebhookDelivery, WebhookEndpoint
from integrations.urlguard import address_is_public
from messaging.services import message_send
from tests.receiver import Receiver, receiver_running

pytestmark = pytest.mark.django_db

PUBLIC_TEST_ADDRESS = "93.184.215.14"  # only ever returned by the patched resolver

REAL_GETADDRINFO = socket.getaddrinfo


def _infos(address: str, port: int) -> list[Any]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
    return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names → addresses for the resolver our code uses; IP literals resolve to themselves
    (as the real resolver does, without any network)."""
    table: dict[str, list[str]] = {}
    calls: list[str] = []

    def fake_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        host = host.decode() if isinstance(host, bytes) else host
        calls.append(host)
        if host in table:
            return [info for address in table[host] for info in _infos(address, int(port))]
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        except OSError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    table["__calls__"] = calls  # type: ignore[assignment]
    return table


def _connections_refused(monkeypatch: pytest.MonkeyPatch, error: type[Exception]) -> list[Any]:
    """Every outgoing connection attempt from now on is recorded (host, port) and fails with
    `error`: nothing leaves the machine."""
    attempts: list[Any] = []

    def refuse(address: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(address[:2])
        raise error(f"connection attempted to {address}")

    def refuse_connect(self: socket.socket, address: Any) -> Any:
        return refuse(address)

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_connect)
    return attempts


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any outgoing connection attempt is recorded and fails the code under test loudly."""
    return _connections_refused(monkeypatch, AssertionError)


@pytest.fixture
def recorded_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every outgoing connection attempt is recorded and refused as a closed port would refuse
    it (the attempt fails cleanly)."""
    return _connections_refused(monkeypatch, ConnectionRefusedError)


@pytest.fixture
def create_webhook(superuser: User, client_for: Callable[..., Client]) -> Callable[..., Any]:
    """create_webhook(url, events=("message.created",)) → a superuser's POST /webhooks."""
    client = client_for(superuser)

    def create(url: str, events: tuple[str, ...] = ("message.created",)) -> Any:
        return client.post(
            "/api/v1/webhooks", {"url": url, "events": list(events)}, "application/json"
        )

    return create


REFUSED_URLS = [
    "http://127.0.0.1/hook",
    "http://127.8.9.10:8080/hook",
    "http://localhost/hook",  # resolves to loopback
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT: not public
    "http://internal.example.test/hook",  # a DNS name → 10.1.2.3
    "http://mixed.example.test/hook",  # one public, one private address → refused
]


@pytest.fixture
def private_names(dns: dict[str, list[str]]) -> dict[str, list[str]]:
    dns["localhost"] = ["127.0.0.1", "::1"]
    dns["internal.example.test"] = ["10.1.2.3"]
    dns["mixed.example.test"] = [PUBLIC_TEST_ADDRESS, "192.168.0.10"]
    dns["public.example.test"] = [PUBLIC_TEST_ADDRESS]
    return dns


SECRET = "whsec_c2VjcmV0c2VjcmV0c2VjcmV0"


def _attempted(customer: User) -> WebhookDelivery:
    """A new conversation (conversation.created), the worker until idle: the one endpoint's
    one delivery."""
    message_send(customer=customer, conversation_id=None, text="hello")
    worker_run_until_idle()
    return WebhookDelivery.objects.get()


def _one_attempt(url: str, customer: User) -> WebhookDelivery:
    """An endpoint row for `url` written straight (around the API's check), one event, the
    worker until idle: the endpoint's one delivery."""
    WebhookEndpoint.objects.create(url=url, events=["conversation.created"], secret=SECRET)
    return _attempted(customer)


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_refused_at_creation(
    url: str, private_names: Any, no_connections: list[Any], create_webhook: Callable[..., Any]
) -> None:
    response = create_webhook(url)
    assert response.status_code == 422, response.content
    assert response.json()["detail"][0]["loc"] == ["body", "url"]
    assert "non-public" in response.json()["detail"][0]["msg"]
    assert not WebhookEndpoint.objects.exists()
    assert no_connections == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://public.example.test/x",
        "http://user:pw@public.example.test/x",
        "http:///nohost",
        "http://no-such-host.example.test/x",
        "http://public.example.test:99999/x",
        "not a url",
    ],
)
def test_malformed_or_unresolvable_urls_are_refused(
    url: str, private_names: Any, no_connections: list[Any], create_webhook: Callable[..., Any]
) -> None:
    response = create_webhook(url)
    assert response.status_code == 422
    assert not WebhookEndpoint.objects.exists()


def test_a_public_name_is_accepted_without_connecting(
    private_names: Any, no_connections: list[Any], create_webhook: Callable[..., Any]
) -> None:
    response = create_webhook("https://public.example.test/hook")
    assert response.status_code == 201
    assert no_connections == []


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_refused_at_delivery_without_any_connection(
    url: str, private_names: Any, no_connections: list[Any], customer: User
) -> None:
    """An endpoint whose host resolved publicly when it was created and privately now (DNS
    rebinding, or a row written around the API): the worker refuses before connecting."""
    delivery = _one_attempt(url, customer)
    assert delivery.status == "failed"  # a refused address is not retried
    assert "non-public" in delivery.error
    assert delivery.status_code is None
    assert no_connections == []


def test_rebinding_after_creation_is_refused_at_delivery(
    private_names: dict[str, list[str]],
    no_connections: list[Any],
    customer: User,
    create_webhook: Callable[..., Any],
) -> None:
    private_names["rebind.example.test"] = [PUBLIC_TEST_ADDRESS]
    response = create_webhook("http://rebind.example.test/hook", ("conversation.created",))
    assert response.status_code == 201
    private_names["rebind.example.test"] = ["169.254.169.254"]
    delivery = _attempted(customer)
    assert (delivery.status, delivery.status_code) == ("failed", None)
    assert no_connections == []


def test_the_connection_goes_to_the_checked_address(
    settings: Any, dns: dict[str, list[str]], receiver: Receiver, customer: User
) -> None:
    """One lookup per attempt, and the request reaches the address that lookup returned, with
    the URL's host name in the Host header. (Loopback allowed only for this receiver.)"""
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    port = int(receiver.base_url.rsplit(":", 1)[1])
    dns["hooks.example.test"] = ["127.0.0.1"]
    delivery = _one_attempt(f"http://hooks.example.test:{port}/hook", customer)
    calls: list[str] = dns["__calls__"]  # type: ignore[assignment]
    assert calls.count("hooks.example.test") == 1
    (request,) = receiver.requests
    assert request.headers["Host"] == f"hooks.example.test:{port}"
    assert delivery.delivered is True


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.255.255.255", False),
        ("172.31.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("::", False),
        ("0.0.0.0", False),  # noqa: S104 - an address under test, nothing binds to it
        ("fe80::1%eth0", False),
        ("::ffff:10.0.0.1", False),
        ("ff02::1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),  # reserved
    ],
)
def test_address_classification(address: str, public: bool) -> None:
    assert address_is_public(address) is public


def _self_signed(tmp_path: Any, host: str) -> tuple[str, str]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.mark.parametrize(
    ("url_host", "delivered"), [("hooks.example.test", True), ("other.example.test", False)]
)
def test_https_to_the_checked_address_verifies_the_url_host(
    tmp_path: Any,
    settings: Any,
    dns: dict[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    customer: User,
    url_host: str,
    delivered: bool,
) -> None:
    """TLS goes to the checked IP but names the URL's host (SNI) and checks the certificate
    against it: a certificate for another name fails the attempt."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from integrations import urlguard

    cert, key = _self_signed(tmp_path, "hooks.example.test")
    seen_sni: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.sni_callback = lambda sock, name, ctx: seen_sni.append(name)  # type: ignore[assignment]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client_ctx = ssl.create_default_context(cafile=cert)
        monkeypatch.setattr(urlguard, "TLS_VERIFY", client_ctx)
        settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
        settings.WEBHOOK_MAX_ATTEMPTS = 1
        dns[url_host] = ["127.0.0.1"]
        delivery = _one_attempt(f"https://{url_host}:{server.server_address[1]}/hook", customer)
    finally:
        server.shutdown()
        server.server_close()
    assert delivery.delivered is delivered, delivery.error
    assert seen_sni == [url_host]
    if not delivered:
        assert delivery.error == "Connection failed (ConnectError)"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.test/x", True),
        ("https://eu.hooks.example.test/x", True),
        ("https://HOOKS.example.test./x", True),
        ("https://evilhooks.example.test/x", False),
        ("https://example.test/x", False),
        ("https://crm.partner.test/x", True),
        ("https://other.test/x", False),
    ],
)
def test_allowed_hosts_are_checked_before_any_lookup(
    settings: Any, dns: dict[str, list[str]], no_connections: list[Any], url: str, allowed: bool
) -> None:
    from integrations.urlguard import UnsafeUrl, url_check

    settings.WEBHOOK_ALLOWED_HOSTS = ["hooks.example.test", "crm.partner.test"]
    for name in (
        "hooks.example.test",
        "hooks.example.test.",
        "eu.hooks.example.test",
        "crm.partner.test",
    ):
        dns[name] = [PUBLIC_TEST_ADDRESS]
    calls: list[str] = dns["__calls__"]  # type: ignore[assignment]
    if allowed:
        assert url_check(url).address == PUBLIC_TEST_ADDRESS
    else:
        with pytest.raises(UnsafeUrl, match="WEBHOOK_ALLOWED_HOSTS"):
            url_check(url)
        assert calls == []
    assert no_connections == []


# --- Every spelling of an address, at creation and at delivery ---------------------------------

# (host as written in the URL, the address it names, public?). The C resolver reads IPv4 in
# decimal, octal and hex, whole or in short forms; IPv6 has forms that embed or tunnel to an
# IPv4 address. Each names the address in the second column, and only that one is checked.
ADDRESS_SPELLINGS = [
    ("127.0.0.1", "127.0.0.1", False),
    ("2130706433", "127.0.0.1", False),  # decimal
    ("017700000001", "127.0.0.1", False),  # octal
    ("0177.0.0.01", "127.0.0.1", False),  # octal, dotted
    ("0x7f000001", "127.0.0.1", False),  # hex
    ("0x7f.0.0.1", "127.0.0.1", False),  # hex, dotted
    ("127.1", "127.0.0.1", False),  # short forms
    ("127.0.1", "127.0.0.1", False),
    ("0x7F.1", "127.0.0.1", False),
    ("127.0.0.1.", "127.0.0.1", False),  # the root label
    ("①②⑦.0.0.1", "127.0.0.1", False),  # IDNA's NFKC makes it 127.0.0.1
    ("2852039166", "169.254.169.254", False),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254", False),
    ("0251.0376.0251.0376", "169.254.169.254", False),
    ("169.254.43518", "169.254.169.254", False),
    ("10.1", "10.0.0.1", False),
    ("0", "0.0.0.0", False),  # noqa: S104 - an address under test
    ("[::1]", "::1", False),
    ("[0:0:0:0:0:0:0:1]", "::1", False),
    ("[::]", "::", False),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1", False),  # IPv4-mapped
    ("[::ffff:a9fe:a9fe]", "::ffff:a9fe:a9fe", False),
    ("[::ffff:5db8:d70e]", "::ffff:5db8:d70e", False),  # mapped, even of a public address
    ("[::7f00:1]", "::7f00:1", False),  # IPv4-compatible
    ("[::a9fe:a9fe]", "::a9fe:a9fe", False),
    ("[::127.0.0.1]", "::7f00:1", False),
    ("[::ffff:0:a9fe:a9fe]", "::ffff:0:a9fe:a9fe", False),  # IPv4-translated
    ("[2002:a9fe:a9fe::1]", "2002:a9fe:a9fe::1", False),  # 6to4
    ("[2002:5db8:d70e::1]", "2002:5db8:d70e::1", False),  # 6to4, even of a public address
    ("[64:ff9b::a9fe:a9fe]", "64:ff9b::a9fe:a9fe", False),  # NAT64
    ("[64:ff9b::169.254.169.254]", "64:ff9b::a9fe:a9fe", False),
    ("[64:ff9b::5db8:d70e]", "64:ff9b::5db8:d70e", False),
    ("[64:ff9b:1::a9fe:a9fe]", "64:ff9b:1::a9fe:a9fe", False),  # NAT64, local use
    ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
    ("[fec0::1]", "fec0::1", False),  # site-local
    ("[fd12:3456::1]", "fd12:3456::1", False),  # unique local
    ("[fe80::1]", "fe80::1", False),
    ("[fe80::1%25eth0]", "fe80::1%eth0", False),  # a zone id
    ("[ff02::1]", "ff02::1", False),
    ("[2001:db8::1]", "2001:db8::1", False),  # documentation
    ("93.184.215.14", "93.184.215.14", True),
    ("1572394766", "93.184.215.14", True),
    ("0x5d.0xb8.0xd7.0x0e", "93.184.215.14", True),
    ("93.12113678", "93.184.215.14", True),
    ("0135.0270.0327.016", "93.184.215.14", True),
    ("[2606:4700:4700::1111]", "2606:4700:4700::1111", True),
]
SPELLING_IDS = [spelling for spelling, _address, _public in ADDRESS_SPELLINGS]


@pytest.mark.parametrize(("spelling", "address", "public"), ADDRESS_SPELLINGS, ids=SPELLING_IDS)
def test_every_spelling_is_checked_as_that_address_at_creation_and_delivery(
    spelling: str,
    address: str,
    public: bool,
    dns: dict[str, list[str]],
    recorded_connections: list[Any],
    create_webhook: Callable[..., Any],
    customer: User,
    settings: Any,
) -> None:
    from integrations.urlguard import UnsafeUrl, url_check

    url = f"http://{spelling}/hook"
    assert address_is_public(address) is public
    if public:
        target = url_check(url)
        assert ipaddress.ip_address(target.address) == ipaddress.ip_address(address)
    else:
        with pytest.raises(UnsafeUrl):
            url_check(url)

    # At creation: refused, or accepted without connecting.
    response = create_webhook(url, ("conversation.created",))
    if public:
        assert response.status_code == 201, response.content
    else:
        assert response.status_code == 422, response.content
        assert response.json()["detail"][0]["loc"] == ["body", "url"]
        assert not WebhookEndpoint.objects.exists()
        # A row written around the API (or before this rule): the worker checks the same way.
        WebhookEndpoint.objects.create(url=url, events=["conversation.created"], secret=SECRET)
    assert recorded_connections == []

    # At delivery: it connects — here: tries to, the connect is patched — only to the public
    # address named, exactly it.
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    delivery = _attempted(customer)
    assert (delivery.status, delivery.status_code, delivery.delivered) == ("failed", None, False)
    if public:
        assert delivery.error == "Connection failed (ConnectError)"
        assert [ipaddress.ip_address(a) for a, _port in recorded_connections] == [
            ipaddress.ip_address(address)
        ]
        assert {port for _a, port in recorded_connections} == {80}
    else:
        assert recorded_connections == []
        assert delivery.error  # refused before any connection
    assert dns["__calls__"] == []  # an address literal is never looked up


# --- The path is a path -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "//169.254.169.254/latest/meta-data/",
        "//127.0.0.1:6379/",
        "///evil.example/x",
        "//user@evil.example:81/x",
        "/%2F%2Fevil.example/x",
        "//[::1]:8080/x",
    ],
)
def test_the_request_url_keeps_the_checked_address_whatever_the_path(
    path: str, dns: dict[str, list[str]]
) -> None:
    from integrations.urlguard import request_url, url_check

    dns["hooks.example.test"] = [PUBLIC_TEST_ADDRESS]
    target = url_check(f"https://hooks.example.test:8443{path}?a=1")
    url = request_url(target)
    assert (url.scheme, url.host, url.port) == ("https", PUBLIC_TEST_ADDRESS, 8443)
    assert url.raw_path == f"{path}?a=1".encode()
    assert target.host_header == "hooks.example.test:8443"


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    """Another receiver on 127.0.0.1: the host a `//host` path names."""
    with receiver_running() as running:
        yield running


@pytest.mark.parametrize("allow_list", [False, True])
def test_a_network_path_in_the_url_is_delivered_to_the_checked_host_only(
    allow_list: bool,
    settings: Any,
    dns: dict[str, list[str]],
    receiver: Receiver,
    second_receiver: Receiver,
    customer: User,
) -> None:
    """`http://hooks:A//127.0.0.1:B/stolen`: the request goes to A (the checked host), with the
    path as it is written; B — the host the path names — hears nothing, also when
    WEBHOOK_ALLOWED_HOSTS names only the checked host."""
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True  # the receivers are on loopback
    if allow_list:
        settings.WEBHOOK_ALLOWED_HOSTS = ["hooks.example.test"]
    port_a = int(receiver.base_url.rsplit(":", 1)[1])
    port_b = int(second_receiver.base_url.rsplit(":", 1)[1])
    dns["hooks.example.test"] = ["127.0.0.1"]
    path = f"//127.0.0.1:{port_b}/stolen"

    delivery = _one_attempt(f"http://hooks.example.test:{port_a}{path}", customer)

    (request,) = receiver.requests
    assert request.target == path
    assert request.headers["Host"] == f"hooks.example.test:{port_a}"
    assert second_receiver.requests == []
    assert delivery.delivered is True
    # One lookup, of the URL's host; the connect resolves only the checked address it was given.
    assert dns["__calls__"] == ["hooks.example.test", "127.0.0.1"]
