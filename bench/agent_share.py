"""The agent's share of a message's CPU, and its per-message latency (docs/agent.md).

    python -m bench.agent_share [--requests 400] [--messages 20]

Against the database of DATABASE_URL (migrated here; default: a temporary SQLite file) and
REDIS_URL if set. Measures, in one process, with time.process_time (every thread):

- a whole ``POST /api/v1/messages/process`` through Django's test client (middleware, ninja,
  auth, service, agent, write, pushes) on one conversation, messages taken in turn from the
  evaluation sets;
- the agent alone (``get_agent().respond_now``) on the same messages and a snapshot like the
  one the route builds;
- the classifier alone, per message, on every evaluation message: p50 and p99 on one core
  (pin the process: ``taskset -c 0``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup() -> None:
    if "DATABASE_URL" not in os.environ:
        path = Path(tempfile.mkdtemp()) / "agent_share.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["RATE_LIMIT_MESSAGES"] = "1000000/m"
    os.environ["RATE_LIMIT_CONVERSATIONS"] = "1000000/h"
    os.environ["AGENT_MAX_TURNS"] = "1000000000"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=20, help="classifier passes over the sets")
    args = parser.parse_args()
    _setup()

    from django.test import Client

    from accounts import services as account_services
    from accounts.models import User
    from messaging.agent import ConversationSnapshot, TurnSnapshot, get_agent
    from messaging.agent.evaluate import load_eval_set
    from messaging.agent.rules import RuleBasedAgent

    texts = [
        text
        for path in sorted((ROOT / "tests/messaging/agent").glob("*.jsonl"))
        for text, _ in load_eval_set(path)
    ]
    # Messages the agent answers without handing over, so every request takes the same path.
    agent = get_agent()
    assert isinstance(agent, RuleBasedAgent)
    first = ConversationSnapshot(id=None, customer_id=0, turn_count=0, recent_messages=())
    calm = [t for t in texts if not agent.respond_now(first, t).escalate][:200]

    user = User.objects.create_user(username=f"share{os.getpid()}", password="x" * 20)
    token = account_services.token_pair_issue(user=user, requested_scopes=None).access_token
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost")

    def post(text: str, conversation_id: int | None) -> dict:
        response = client.post(
            "/api/v1/messages/process",
            data=json.dumps(
                {"message": text, "customer_id": user.pk, "conversation_id": conversation_id}
            ),
            content_type="application/json",
        )
        assert response.status_code == 200, response.status_code
        return response.json()

    conversation_id = post("hello", None)["conversation_id"]
    for text in calm[:20]:  # warm-up: caches, prepared statements, the model
        post(text, conversation_id)
    request_cpu: list[float] = []
    for i in range(args.requests):
        text = calm[i % len(calm)]
        started = time.process_time()
        post(text, conversation_id)
        request_cpu.append(time.process_time() - started)

    history = tuple(
        TurnSnapshot(role=role, content=text, intent="billing", confidence=0.9)
        for role, text in [("customer", calm[0]), ("agent", "An answer")] * 5
    )
    snapshot = ConversationSnapshot(
        id=conversation_id, customer_id=user.pk, turn_count=50, recent_messages=history
    )
    agent_cpu: list[float] = []
    for i in range(args.requests):
        text = calm[i % len(calm)]
        started = time.process_time()
        agent.respond_now(snapshot, text)
        agent_cpu.append(time.process_time() - started)

    classify: list[float] = []
    for _ in range(args.repeat):
        for text in texts:
            started = time.perf_counter()
            agent.classify(text)
            classify.append(time.perf_counter() - started)

    request_ms = statistics.median(request_cpu) * 1e3
    agent_ms = statistics.median(agent_cpu) * 1e3
    report = {
        "database": os.environ["DATABASE_URL"].split(":", 1)[0],
        "requests": args.requests,
        "request_cpu_ms_median": round(request_ms, 3),
        "agent_respond_now_cpu_ms_median": round(agent_ms, 3),
        "agent_share_of_request": f"{agent_ms / request_ms:.1%}",
        "classify_ms": {
            "messages": len(classify),
            "p50": round(_percentile(classify, 0.50) * 1e3, 3),
            "p99": round(_percentile(classify, 0.99) * 1e3, 3),
            "max": round(max(classify) * 1e3, 3),
        },
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
