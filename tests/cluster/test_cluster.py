"""Two application hosts, one deployment: what one host does, the other sees. A write on host A
is pushed, in order, to a socket on host B; a rate limit counts requests to both hosts; a token
revoked on one host is refused on the other; a keyed send replays on the other host; an admin
session signed in on one host buys a live-channel ticket on the other, which works once; and the
two hosts' webhook workers deliver every event once between them. The hosts run exactly the
commands of deploy/hosts.py (what the container image runs)."""

from __future__ import annotations

import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from deploy.hosts import REDIS_ARGS, REDIS_SHARD_PORTS, app_command
from tests.cluster.hosts import Deployment, Endpoint, until
from tests.faults.deployment import SocketListener
from tests.realtime.servers import PASSWORD, api

# The session's cluster starts inside the first test's time (about a minute on 2 cores).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def _send(endpoint: Endpoint, token: str, body: dict[str, Any], key: str = "") -> tuple[int, Any]:
    headers = {"Idempotency-Key": key} if key else {}
    return api(endpoint, "POST", "/api/v1/messages/process", body, token, headers=headers)  # type: ignore[arg-type]


def test_every_host_runs_the_commands_of_the_deploy_table(cluster: Deployment) -> None:
    for host in cluster.run.apps:
        assert host.pid is not None
        assert _cmdline(host.pid) == app_command(sys.executable)
    # Redis rewrites its process title, so its settings are read back instead.
    import redis

    assert cluster.run.data is not None
    wanted = dict(zip(REDIS_ARGS[::2], REDIS_ARGS[1::2], strict=True))
    for port in REDIS_SHARD_PORTS:
        client = redis.Redis(host=cluster.run.data.address, port=port)
        try:
            for option, value in wanted.items():
                name = option.removeprefix("--")
                assert client.config_get(name) == {name: value}
        finally:
            client.close()


def test_a_write_on_one_host_is_pushed_in_order_to_a_socket_on_the_other(
    cluster: Deployment,
) -> None:
    host_a, host_b = cluster.hosts
    token, customer_id = cluster.token("crossa", via=host_a)
    status, first = _send(host_a, token, {"message": "hello", "customer_id": customer_id})
    assert status == 200, first
    conversation_id = first["conversation_id"]
    socket = SocketListener(cluster, token, conversation_id, ws=host_b.ws)  # type: ignore[arg-type]
    socket.start()
    try:
        written: list[int] = []
        for number in range(8):
            body = {
                "message": f"from host A {number}",
                "customer_id": customer_id,
                "conversation_id": conversation_id,
            }
            status, answer = _send(host_a, token, body)
            assert status == 200, answer
            metadata = answer["metadata"]
            written += [metadata["customer_message_seq"], metadata["seq"]]
        until(lambda: set(written) <= socket.message_seqs(), 15, "pushes on host B", cluster)
    finally:
        socket.close()
    # Every write, once, in seq order, and nothing missing in between (an escalated
    # conversation's replies may repeat an earlier acknowledgement's seq: a set).
    pushed = [f["message"]["seq"] for f in socket.frames if f["type"] == "message"]
    assert set(written) <= set(pushed)
    assert pushed == list(range(pushed[0], pushed[-1] + 1))


def test_a_rate_limit_counts_requests_to_every_host(cluster: Deployment) -> None:
    # Registration: 5 a minute per client address, whichever host serves the request.
    statuses = []
    headers: dict[str, str] = {}
    for number in range(6):
        name = f"reg{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(18)
        body = {"username": name, "password": password, "email": f"{name}@example.com"}
        request = urllib.request.Request(
            f"{cluster.hosts[number % 2].http}/api/v1/auth/register",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)
            headers = {name.lower(): value for name, value in exc.headers.items()}
    assert statuses == [201] * 5 + [429]
    assert int(headers["retry-after"]) > 0


def test_a_token_revoked_on_one_host_is_refused_on_the_other(cluster: Deployment) -> None:
    host_a, host_b = cluster.hosts
    token, _ = cluster.token("revokes", via=host_a)
    assert api(host_b, "GET", "/api/v1/auth/me", token=token)[0] == 200  # type: ignore[arg-type]
    assert api(host_a, "POST", "/api/v1/auth/revoke", {}, token)[0] == 204  # type: ignore[arg-type]
    status, body = api(host_b, "GET", "/api/v1/auth/me", token=token)  # type: ignore[arg-type]
    assert status == 401, body


def test_a_keyed_send_replays_on_the_other_host(cluster: Deployment) -> None:
    host_a, host_b = cluster.hosts
    token, customer_id = cluster.token("replays", via=host_a)
    body = {"message": "only once, please", "customer_id": customer_id}
    first = _send(host_a, token, body, key="replay-1")
    again = _send(host_b, token, body, key="replay-1")
    assert first[0] == again[0] == 200
    assert again[1]["message_id"] == first[1]["message_id"]
    assert again[1]["conversation_id"] == first[1]["conversation_id"]
    with cluster.connect() as db:
        (count,) = db.execute(
            "SELECT count(*) FROM messaging_message "
            "WHERE conversation_id = %s AND role = 'customer'",
            [first[1]["conversation_id"]],
        ).fetchone()  # type: ignore[misc]
    assert count == 1


class Browser:
    """An admin page's cookies, kept by hand: the production profile marks them Secure, which
    urllib's cookie jar would not send over the test's plain HTTP."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def request(
        self, endpoint: Endpoint, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if "csrftoken" in self.cookies and method == "POST":
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        if data is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(
            f"{endpoint.http}{path}", data=data, headers=headers, method=method
        )
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            response = opener.open(request, timeout=30)
        except urllib.error.HTTPError as exc:
            response = exc
        for value in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(value).items():
                self.cookies[name] = morsel.value
        headers = {name.lower(): value for name, value in response.headers.items()}
        return response.status, response.read().decode(), headers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_an_admin_session_and_its_ticket_hold_across_hosts(cluster: Deployment) -> None:
    from websockets.sync.client import connect

    host_a, host_b = cluster.hosts
    browser = Browser()
    status, _, _ = browser.request(host_a, "GET", "/admin/login/")
    assert status == 200
    status, _, headers = browser.request(
        host_a,
        "POST",
        "/admin/login/?next=/admin/",
        {
            "username": "faultroot",
            "password": PASSWORD,
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
    )
    assert (status, headers.get("location")) == (302, "/admin/"), (status, headers)
    # The session signed in on host A is valid on host B.
    assert browser.request(host_b, "GET", "/admin/")[0] == 200
    status, body, _ = browser.request(
        host_b, "POST", "/admin/escalations/escalation/live-ticket/", {}
    )
    assert status == 200, body
    ticket = json.loads(body)["ticket"]

    def auth(endpoint: Endpoint) -> str:
        with connect(
            f"{endpoint.ws}/ws/escalations/",
            origin=endpoint.http,  # type: ignore[arg-type]
            open_timeout=10,
        ) as socket:
            socket.send(json.dumps({"type": "auth", "ticket": ticket}))
            try:
                return str(json.loads(socket.recv(timeout=10))["type"])
            except Exception as exc:  # noqa: BLE001 - a refused ticket closes the socket
                return type(exc).__name__

    # Bought on host B, used on host A: once; host B then refuses it too.
    assert auth(host_a) == "auth.ok"
    assert auth(host_b) != "auth.ok"


def test_both_hosts_workers_deliver_every_event_once(cluster: Deployment) -> None:
    token, customer_id = cluster.token("hooks")
    conversation_id = None
    message_ids = []
    for number in range(10):
        body = {
            "message": f"hook {number}",
            "customer_id": customer_id,
            "conversation_id": conversation_id,
        }
        status, answer = _send(cluster.hosts[number % 2], token, body)
        assert status == 200, answer
        conversation_id = answer["conversation_id"]
        message_ids += [answer["metadata"]["customer_message_id"], answer["message_id"]]

    def delivered() -> Counter[int]:
        return Counter(
            event["data"]["id"]
            for event in cluster.receiver.events()
            if event["type"] == "message.created" and event["data"]["id"] in message_ids
        )

    until(lambda: set(message_ids) <= set(delivered()), 60, "deliveries", cluster)
    # Each event reached the receiver once: no attempt was claimed by both hosts' workers.
    assert set(delivered().values()) == {1}
    webhook_ids = Counter(
        request.headers["webhook-id"]
        for request in cluster.receiver.requests
        if request.json["type"] == "message.created" and request.json["data"]["id"] in message_ids
    )
    assert set(webhook_ids.values()) == {1}
