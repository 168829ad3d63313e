"""Cross-node push latency: a write on one host, seen by a socket on the same host and by a
socket on another host of the multi-host run (deploy/cluster.py).

    .venv/bin/python -m bench.cluster [--hosts 2] [--messages 300]
    .venv/bin/python -m deploy.cluster bench                 # the same, 2 hosts

It starts its own cluster (root, network namespaces; torn down afterwards), seeds one customer,
opens a socket on the conversation on host A and one on host B, then sends `--messages`
messages one at a time through host A's REST API. For each message it takes the time from the
moment the request was sent to the moment each socket received the customer's message, so
both figures include the same request work and differ only by where the socket is: the
channel layer's Redis shard carries the event to the other host's websocket process exactly as
to the same host's. Results: bench/results/cluster.json (p50, p90, p99, max in ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from deploy.cluster import BASE_DIR, base_environment, cluster_running

RESULTS = BASE_DIR / "bench" / "results" / "cluster.json"
PASSWORD = "bench-cluster-pass-2026"  # noqa: S105 - a throwaway account in a throwaway cluster
BENCH_ENV = {"RATE_LIMIT_MESSAGES": "1000000/m", "AGENT_MAX_TURNS": "1000000000"}


def _post(url: str, body: dict[str, Any], token: str = "") -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our hosts
        result: dict[str, Any] = json.loads(response.read())
        return result


class Listener(threading.Thread):
    """A socket on the conversation: when each customer message seq arrived."""

    def __init__(self, ws: str, origin: str, token: str, conversation_id: int) -> None:
        super().__init__(daemon=True)
        from websockets.sync.client import connect
        from websockets.typing import Origin

        self.socket = connect(
            f"{ws}/ws/conversations/{conversation_id}/", origin=Origin(origin), open_timeout=10
        )
        self.socket.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(self.socket.recv(timeout=10))["type"] == "auth.ok"
        self.arrived: dict[int, float] = {}

    def run(self) -> None:
        try:
            for raw in self.socket:
                frame = json.loads(raw)
                if frame["type"] == "message":
                    self.arrived.setdefault(frame["message"]["seq"], time.perf_counter())
        except Exception:  # noqa: BLE001, S110 - closed at the end of the run
            pass


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 2)

    return {
        "count": len(ordered),
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


def measure(*, hosts: int, messages: int) -> dict[str, Any]:
    with cluster_running(hosts=hosts, extra_env=BENCH_ENV) as run:
        seed = (
            "from accounts.models import User\n"
            f"User.objects.create_user('benchcluster', 'bench@example.com', {PASSWORD!r})"
        )
        subprocess.run(  # noqa: S603 - our interpreter and manage.py
            [sys.executable, "manage.py", "shell", "-c", seed],
            cwd=BASE_DIR,
            env=base_environment(run),
            check=True,
            capture_output=True,
        )
        host_a, host_b = run.apps[0], run.apps[1 % len(run.apps)]
        token = _post(
            f"{host_a.http}/api/v1/auth/token", {"username": "benchcluster", "password": PASSWORD}
        )["access_token"]
        me = json.loads(
            urllib.request.urlopen(  # noqa: S310 - our host
                urllib.request.Request(
                    f"{host_a.http}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
                ),
                timeout=30,
            ).read()
        )
        first = _post(
            f"{host_a.http}/api/v1/messages/process",
            {"message": "warm-up", "customer_id": me["id"]},
            token,
        )
        conversation_id = first["conversation_id"]
        same = Listener(host_a.ws, host_a.http, token, conversation_id)
        other = Listener(host_b.ws, host_b.http, token, conversation_id)
        same.start()
        other.start()
        sent: dict[int, float] = {}
        for number in range(messages):
            started = time.perf_counter()
            answer = _post(
                f"{host_a.http}/api/v1/messages/process",
                {
                    "message": f"bench {number}",
                    "customer_id": me["id"],
                    "conversation_id": conversation_id,
                },
                token,
            )
            sent[answer["metadata"]["customer_message_seq"]] = started
            time.sleep(0.01)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            set(sent) <= set(same.arrived) and set(sent) <= set(other.arrived)
        ):
            time.sleep(0.1)
        same.socket.close()
        other.socket.close()
        lost = {
            "same_node": len(set(sent) - set(same.arrived)),
            "cross_node": len(set(sent) - set(other.arrived)),
        }
        return {
            "what": "time from sending POST /messages/process on host A to the customer "
            "message's frame on a socket on host A (same node) and on host B (cross node)",
            "hosts": hosts,
            "messages": messages,
            "machine": "one machine, 2 cores; hosts are network namespaces on a bridge",
            "same_node": _summary(
                [same.arrived[s] - t for s, t in sent.items() if s in same.arrived]
            ),
            "cross_node": _summary(
                [other.arrived[s] - t for s, t in sent.items() if s in other.arrived]
            ),
            "not_received": lost,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args(argv)
    if args.hosts < 2:
        parser.error("cross-node latency needs --hosts 2 or more")
    result = measure(hosts=args.hosts, messages=args.messages)
    Path(RESULTS).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
