"""A running cluster as the tests see it: each application host's endpoints, the front's, the
database for assertions, and the fault tests' keyed senders and socket listeners pointed at the
hosts (tests/faults/deployment.py)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from deploy.cluster import Host, Run, base_environment, down, start_app, wait_app
from deploy.hosts import APP_WS_PORT
from tests.faults.deployment import BASE_DIR, SEED, until
from tests.realtime.servers import PASSWORD, api
from tests.receiver import Receiver

# What the tests change from the production profile: senders far under the message limit,
# webhooks to the receiver on the bridge (a private address), retries soon, and staff signing
# in to the admin with a password alone (the second factor has its own tests).
CLUSTER_ENV = {
    "RATE_LIMIT_MESSAGES": "100000/m",
    "RATE_LIMIT_LOGIN": "1000/m",
    "WEBHOOK_ALLOW_PRIVATE_HOSTS": "1",
    "WEBHOOK_RETRY_BASE_SECONDS": "1",
    "WEBHOOK_TIMEOUT_SECONDS": "3",
    "STAFF_MFA_REQUIRED": "0",
}


# Customers of the tests' own, besides the fault tests' senders (tests/faults/deployment.py).
CUSTOMERS = ("crossa", "revokes", "replays", "hooks", "shards", "resumes")


@dataclass
class Endpoint:
    """Where a client talks to one host (or the front): `http` as tests.realtime.servers.api
    reads it, `ws` for sockets."""

    http: str
    ws: str


@dataclass
class Deployment:
    run: Run
    receiver: Receiver

    @property
    def hosts(self) -> list[Endpoint]:
        return [Endpoint(http=host.http, ws=host.ws) for host in self.run.apps]

    @property
    def front(self) -> Endpoint:
        return Endpoint(http=self.run.front, ws=self.run.front.replace("http", "ws", 1))

    # What KeyedSender and SocketListener read of a fault test's Parley.
    @property
    def http(self) -> Endpoint:
        return self.hosts[0]

    @property
    def ws_port(self) -> int:
        return APP_WS_PORT

    def env(self) -> dict[str, str]:
        return base_environment(self.run)

    def seed(self) -> None:
        users = "\n".join(
            f"User.objects.create_user({name!r}, {name + '@example.com'!r}, {PASSWORD!r})"
            for name in CUSTOMERS
        )
        self.manage("shell", "-c", SEED + users, extra_env={"FAULT_RECEIVER": self.receiver.url()})

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        done = subprocess.run(  # noqa: S603 - our interpreter and manage.py
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env={**self.env(), **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.run.database_url(), autocommit=True)

    def token(self, username: str, via: Endpoint | None = None) -> tuple[str, int]:
        via = via or self.hosts[0]
        status, body = api(
            via, "POST", "/api/v1/auth/token", {"username": username, "password": PASSWORD}
        )  # type: ignore[arg-type]
        assert status == 200, body
        status, me = api(via, "GET", "/api/v1/auth/me", token=body["access_token"])  # type: ignore[arg-type]
        assert status == 200, me
        return str(body["access_token"]), int(me["id"])

    def log_tail(self, lines: int = 40) -> str:
        tails = []
        for host in self.run.apps:
            text = Path(host.log).read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {host.netns}\n" + "\n".join(text))
        return "\n".join(tails)

    def log_text(self, host: Host) -> str:
        return Path(host.log).read_text(errors="replace")

    def host_restart(self, host: Host) -> None:
        """Start a host's profile again (after a kill) and wait until it serves."""
        start_app(self.run, host)
        wait_app(self.run, host)

    def ready(self, endpoint: Endpoint) -> tuple[int, Any]:
        try:
            return api(endpoint, "GET", "/ready")  # type: ignore[arg-type]
        except OSError as exc:
            return 0, type(exc).__name__

    def all_ready(self, timeout: float = 60) -> None:
        """Until every host's web and websocket servers answer /ready with 200 (each process
        sees an outage of its own; a passing probe ends it in that process)."""
        servers = [
            *self.hosts,
            *(
                Endpoint(http=f"http://{host.address}:{APP_WS_PORT}", ws=host.ws)
                for host in self.run.apps
            ),
        ]
        until(
            lambda: all(self.ready(server)[0] == 200 for server in servers),
            timeout,
            "every host ready",
            self,
        )


__all__ = ["CLUSTER_ENV", "Deployment", "Endpoint", "down", "until"]
