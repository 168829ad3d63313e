"""`make bench` scenarios for a support team at scale (run by bench/run.py after the others,
on the same server and database; or alone: `python -m bench.run --scenarios search,burst`).

7 search   The write cost of the search index first: pgbench running the captured SQL of one
           POST /messages/process with the `search_vector` column and its GIN index, then
           without them (dropped), then with them again, alternating. Then GET /search p50 /
           p95 / p99 through the served API as the messages grow (default 10 000, 100 000,
           1 000 000): messages are added with SQL (generate_series, realistic word
           frequencies), then a fixed mix of queries — a frequent word, a mid word, a rare one,
           two words, a phrase — by an operator (every conversation) and by customers (their
           own), a few clients at once.
8 burst    1 000 hand-offs at once (64 concurrent POST /messages/process, each opening a new
           conversation with "I want to talk to a human please") with ASSIGNMENT_MODE=auto and
           20 operators connected to /ws/escalations/ (capacity 50 each): the time until all
           are assigned, hand-off latency, and the checks — nobody over capacity, no
           escalation assigned twice (one "joined" notice and one `assigned` event each).

Helpers that need Django run as `python -m bench.operators <command>` with the server's
environment (like bench/seed.py).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import sys
import time
from typing import Any

from bench.ws import process_request

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

SEARCH_SIZES = (10_000, 100_000, 1_000_000)
MESSAGES_PER_CONVERSATION = 20
SEED_BATCH = 100_000
BURST_ESCALATIONS = 1000
BURST_OPERATORS = 20
BURST_CAPACITY = 50
BURST_CONCURRENCY = 64
HANDOFF_MESSAGE = "I want to talk to a human please"

# Word frequencies like a support inbox's: a few everyday words in most messages, a long tail.
COMMON = (
    "order refund invoice password account delivery parcel payment card charge subscription "
    "login email address cancel return shipping price discount receipt app update error "
    "issue problem help thanks please still waiting days week"
).split()
TAIL = [f"zq{n:04d}x" for n in range(2000)]  # synthetic rare words of known rank
VOCABULARY = COMMON + TAIL
QUERIES = {
    "frequent word": "refund",  # rank 2
    "mid word": "subscription",  # rank 13
    "rare word": TAIL[1500],
    "two words": "parcel delivery",
    "phrase": '"payment card"',
}


# --- 7 search --------------------------------------------------------------------------------


def _connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def messages_count(url: str) -> int:
    with _connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM messaging_message").fetchone()[0])


def add_messages(url: str, customer_ids: list[int], count: int) -> float:
    """Add `count` messages in new conversations of the given customers, by SQL in batches;
    returns the seconds it took. Each message: 8-16 words, the i-th word of the vocabulary
    drawn with a probability falling with i (the most frequent word is in about one message
    in seven; the result reports how many messages each query matches)."""
    started = time.monotonic()
    with _connect(url) as conn:
        remaining = count
        while remaining > 0:
            batch = min(SEED_BATCH, remaining)
            conversations = max(1, batch // MESSAGES_PER_CONVERSATION)
            per = batch // conversations
            conn.execute(
                "WITH conv AS ("
                " INSERT INTO messaging_conversation"
                " (customer_id, status, turn_count, agent_turns, last_seq, created_at, updated_at)"
                " SELECT (%(customers)s::bigint[])[1 + (g %% %(n)s)], 'resolved', %(half)s,"
                " %(half)s, %(per)s, now(), now() FROM generate_series(1, %(conversations)s) g"
                " RETURNING id)"
                " INSERT INTO messaging_message"
                " (conversation_id, seq, role, content, metadata, created_at)"
                " SELECT conv.id, s, CASE WHEN s %% 2 = 1 THEN 'customer' ELSE 'agent' END,"
                " (SELECT string_agg((%(words)s::text[])"
                "[1 + floor(power(random(), 1.5) * %(size)s)::int],"
                " ' ') FROM generate_series(1, 8 + ((conv.id + s) %% 9)) w),"
                " '{}'::jsonb, now() - random() * interval '90 days'"
                " FROM conv, generate_series(1, %(per)s) s",
                {
                    "words": VOCABULARY,
                    "size": len(VOCABULARY),
                    "customers": customer_ids,
                    "n": len(customer_ids),
                    "half": per // 2,
                    "per": per,
                    "conversations": conversations,
                },
            )
            remaining -= conversations * per
        # What autovacuum would reach in production: hint bits and the visibility map set,
        # statistics current. Measuring while it still runs measures it, not the search.
        conn.execute("VACUUM (ANALYZE) messaging_message")
        conn.execute("VACUUM (ANALYZE) messaging_conversation")
    return round(time.monotonic() - started, 1)


def matching_counts(url: str) -> dict[str, int]:
    """How many messages each query of the mix matches (the work behind its ranking)."""
    with _connect(url) as conn:
        return {
            label: int(
                conn.execute(
                    "SELECT count(*) FROM messaging_message "
                    "WHERE search_vector @@ websearch_to_tsquery('english', %s)",
                    [query],
                ).fetchone()[0]
            )
            for label, query in QUERIES.items()
        }


def write_cost(bench: Any) -> dict[str, Any]:
    """pgbench on the captured SQL of one message turn, with and without the search column
    and index, alternating (with, without, with, without): the index's cost on the hot path's
    writes, as a ratio within one run."""
    from bench.drivers import median_pgbench, pgbench

    url = bench.env["DATABASE_URL"]
    script = bench.work / "sql" / "pgbench_process.sql"
    clients = 16

    def measure() -> dict[str, Any]:
        return pgbench(script, url=url, clients=clients, duration=bench.args.duration)

    def drop() -> None:
        with _connect(url) as conn:
            conn.execute("ALTER TABLE messaging_message DROP COLUMN search_vector")

    def restore() -> None:
        # The migration's own statements (its module name starts with a digit).
        migration = importlib.import_module("messaging.migrations.0004_message_search")
        with _connect(url) as conn:
            for statement in migration.PG_FORWARD:
                conn.execute(statement)

    pgbench(script, url=url, clients=clients, duration=bench.args.warmup)
    with_index, without = [], []
    for _ in range(max(2, bench.args.runs)):
        with_index.append(measure())
        drop()
        without.append(measure())
        restore()
    a, b = median_pgbench(with_index), median_pgbench(without)
    return {
        "clients": clients,
        "with_index": a,
        "without_index": b,
        "tps_ratio_with_over_without": round(a["tps"] / b["tps"], 3),
    }


async def _timed_get(client: Any, url: str, token: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
    elapsed = (time.perf_counter() - started) * 1000
    hits = len(response.json().get("items", [])) if response.status_code == 200 else -1
    return elapsed, response.status_code, hits


async def _search_round(
    http_url: str, staff: str, customers: list[dict[str, Any]], repeats: int, concurrency: int
) -> dict[str, Any]:
    from urllib.parse import quote

    import httpx

    jobs: list[tuple[str, str, str]] = []
    for n in range(repeats):
        for label, query in QUERIES.items():
            jobs.append((f"staff {label}", f"/api/v1/search?q={quote(query)}", staff))
            customer = customers[n % len(customers)]
            jobs.append(
                (f"customer {label}", f"/api/v1/search?q={quote(query)}", customer["token"])
            )
    results: dict[str, list[float]] = {}
    statuses: dict[int, int] = {}
    hits: dict[str, list[int]] = {}
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=http_url, timeout=60) as client:
        for _label, url, token in jobs[: concurrency * 2]:  # warm-up
            await _timed_get(client, url, token)

        async def one(label: str, url: str, token: str) -> None:
            async with semaphore:
                elapsed, status, found = await _timed_get(client, url, token)
            results.setdefault(label, []).append(elapsed)
            hits.setdefault(label, []).append(found)
            statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(one(*job) for job in jobs))

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "n": len(ordered),
            "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 1),
            "p99_ms": round(ordered[max(0, round(0.99 * len(ordered)) - 1)], 1),
        }

    everything = [v for values in results.values() for v in values]
    return {
        "all": summary(everything),
        "by_query": {label: summary(values) for label, values in sorted(results.items())},
        "hits_per_page": {label: max(values) for label, values in sorted(hits.items())},
        "statuses": statuses,
    }


def search(bench: Any) -> dict[str, Any]:
    url = bench.env["DATABASE_URL"]
    out: dict[str, Any] = {"write_cost": write_cost(bench)}
    bench.log(
        f"7 search write cost: {json.dumps(out['write_cost']['tps_ratio_with_over_without'])}"
    )
    operators = _prepare_operators(bench, count=1, capacity=0)
    staff = operators["operators"][0]["token"]
    customer_ids = [c["id"] for c in bench.seed["customers"]]
    sizes = bench.args.search_sizes or SEARCH_SIZES
    # The corpus starts empty: the earlier scenarios' messages (seeded history, pgbench's turns)
    # are not the mix measured here, and would put the first size out of reach.
    with _connect(url) as conn:
        conn.execute("TRUNCATE messaging_message, messaging_conversation CASCADE")
    rounds = []
    for size in sizes:
        have = messages_count(url)
        seconds = add_messages(url, customer_ids, size - have) if size > have else 0.0
        result = asyncio.run(
            _search_round(
                bench.http_url,
                staff,
                bench.seed["customers"],
                repeats=4 if bench.args.quick else 20,
                concurrency=4,
            )
        )
        result["messages"] = messages_count(url)
        result["seed_seconds"] = seconds
        result["matching_messages"] = matching_counts(url)
        rounds.append(result)
        bench.log(f"7 search at {result['messages']} messages: {json.dumps(result['all'])}")
    out["sizes"] = rounds
    return out


# --- 8 burst ---------------------------------------------------------------------------------


def _prepare_operators(bench: Any, *, count: int, capacity: int) -> dict[str, Any]:
    from bench.setup import run_json

    return run_json(
        [
            sys.executable,
            "-m",
            "bench.operators",
            "operators",
            "--count",
            str(count),
            "--capacity",
            str(capacity),
        ],
        bench.env,
    )


async def _operators_online(client: Any, token: str) -> tuple[int, int]:
    response = await client.get("/api/v1/operators", headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        return response.status_code, 0
    return 200, sum(1 for item in response.json()["items"] if item["status"] == "online")


def assigned_count(url: str) -> int:
    with _connect(url) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM escalations_escalation WHERE status = 'assigned'"
            ).fetchone()[0]
        )


async def _burst(
    http_url: str,
    ws_url: str,
    database_url: str,
    operators: list[dict[str, Any]],
    customers: list[dict[str, Any]],
) -> dict[str, Any]:
    import httpx
    import websockets

    sockets = []
    for operator in operators:
        socket = await websockets.connect(
            f"{ws_url}/ws/escalations/", origin="http://127.0.0.1", max_size=2**22
        )
        await socket.send(json.dumps({"type": "auth", "token": operator["token"]}))
        while json.loads(await socket.recv()).get("type") != "auth.ok":
            pass
        sockets.append(socket)
    assigned_events: dict[int, int] = {}
    watcher = sockets[0]

    async def watch() -> None:
        async for raw in watcher:
            frame = json.loads(raw)
            if frame.get("type") == "escalation.event" and frame["event"] == "assigned":
                escalation_id = frame["escalation"]["id"]
                assigned_events[escalation_id] = assigned_events.get(escalation_id, 0) + 1

    async def read(socket: Any) -> None:
        # The other inbox pages read their frames too, as browsers do (a socket nobody reads
        # would only measure TCP back-pressure).
        async for _raw in socket:
            pass

    watching = asyncio.create_task(watch())
    readers = [asyncio.create_task(read(socket)) for socket in sockets[1:]]
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    semaphore = asyncio.Semaphore(BURST_CONCURRENCY)
    async with httpx.AsyncClient(base_url=http_url, timeout=120) as client:

        async def hand_off(n: int) -> None:
            customer = customers[n % len(customers)]
            async with semaphore:
                started = time.perf_counter()
                response = await client.post(
                    **process_request(customer, HANDOFF_MESSAGE, new_conversation=True)
                )
                latencies.append((time.perf_counter() - started) * 1000)
            key = f"{response.status_code} {response.json().get('status', '')}"
            statuses[key] = statuses.get(key, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(hand_off(n) for n in range(BURST_ESCALATIONS)))
        all_answered = time.perf_counter() - started
        # Most hand-offs are assigned in their own transaction, before their answer; the few
        # left waiting by lock contention are assigned by the drains after commit and, at
        # worst, the worker's periodic job. Wait until the database says all are assigned.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if await asyncio.to_thread(assigned_count, database_url) >= BURST_ESCALATIONS:
                break
            await asyncio.sleep(0.1)
        all_assigned = time.perf_counter() - started
        while len(assigned_events) < BURST_ESCALATIONS and time.monotonic() < deadline:  # noqa: ASYNC110 - a deadline, not an event
            await asyncio.sleep(0.05)
        all_pushed = time.perf_counter() - started
        status, listed = await _operators_online(client, operators[0]["token"])
    watching.cancel()
    for reader in readers:
        reader.cancel()
    for socket in sockets:
        await socket.close()
    ordered = sorted(latencies)
    return {
        "escalations": BURST_ESCALATIONS,
        "operators": len(operators),
        "concurrency": BURST_CONCURRENCY,
        "statuses": statuses,
        "seconds_to_answer_all": round(all_answered, 2),
        "seconds_until_all_assigned": round(all_assigned, 2),
        "seconds_until_every_assigned_event": round(all_pushed, 2),
        "handoffs_per_second": round(BURST_ESCALATIONS / all_answered, 1),
        "handoff_p50_ms": round(statistics.median(ordered), 1),
        "handoff_p99_ms": round(ordered[max(0, round(0.99 * len(ordered)) - 1)], 1),
        "assigned_events_received": len(assigned_events),
        "operators_online_at_the_end": listed if status == 200 else f"GET /operators: {status}",
        "escalations_with_more_than_one_assigned_event": sum(
            1 for n in assigned_events.values() if n > 1
        ),
    }


def burst(bench: Any) -> dict[str, Any]:
    from bench.setup import run_json

    operators = _prepare_operators(bench, count=BURST_OPERATORS, capacity=BURST_CAPACITY)
    result = asyncio.run(
        _burst(
            bench.http_url,
            bench.ws_url,
            bench.env["DATABASE_URL"],
            operators["operators"],
            bench.seed["customers"],
        )
    )
    result["checks"] = run_json(
        [sys.executable, "-m", "bench.operators", "check-burst", "--capacity", str(BURST_CAPACITY)],
        bench.env,
    )
    bench.log(f"8 burst: {json.dumps(result)}")
    return result


# --- Django-side helpers -------------------------------------------------------------------


def operators_create(count: int, capacity: int) -> dict[str, Any]:
    """`count` operators (staff in the Operators group) with `capacity`, and their tokens."""
    from django.contrib.auth.hashers import make_password

    from accounts.models import User
    from bench.seed import _token
    from escalations.models import OperatorProfile
    from escalations.services import operators_group_ensure

    group = operators_group_ensure()
    password = make_password(None)
    out = []
    start = User.objects.filter(username__startswith="bench-op-").count()
    for n in range(start, start + count):
        user = User.objects.create(
            username=f"bench-op-{n}", display_name=f"Op {n}", is_staff=True, password=password
        )
        user.groups.add(group)
        OperatorProfile.objects.create(user=user, capacity=capacity)
        # With the second factor in `amr`, as the other bench staff: without it, STAFF_MFA_REQUIRED
        # (on in production) turns their sockets away and narrows their search to their own.
        out.append({"id": user.pk, "token": _token(user)})
    return {"operators": out}


def check_burst(capacity: int) -> dict[str, Any]:
    from django.db.models import Count

    from escalations.models import Escalation
    from messaging.models import Message

    loads = list(
        Escalation.objects.filter(status="assigned")
        .values("assigned_to")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    joined = (
        Message.objects.filter(role="system", content__endswith=" joined the conversation.")
        .values("conversation")
        .annotate(n=Count("id"))
    )
    return {
        "escalations": Escalation.objects.count(),
        "assigned": Escalation.objects.filter(status="assigned").count(),
        "open": Escalation.objects.filter(status="open").count(),
        "operators_with_escalations": len(loads),
        "max_per_operator": max(loads, default=0),
        "min_per_operator": min(loads, default=0),
        "over_capacity": sum(1 for n in loads if n > capacity),
        "conversations_joined_twice": sum(1 for row in joined if row["n"] > 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.operators")
    sub = parser.add_subparsers(dest="command", required=True)
    p_ops = sub.add_parser("operators")
    p_ops.add_argument("--count", type=int, required=True)
    p_ops.add_argument("--capacity", type=int, required=True)
    p_chk = sub.add_parser("check-burst")
    p_chk.add_argument("--capacity", type=int, required=True)
    args = parser.parse_args(argv)
    import django

    django.setup()
    if args.command == "operators":
        print(json.dumps(operators_create(args.count, args.capacity)))
    else:
        print(json.dumps(check_burst(args.capacity)))


if __name__ == "__main__":
    main(sys.argv[1:])
