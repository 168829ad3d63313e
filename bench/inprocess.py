"""In-process CPU cost of the message route's hot-path pieces, general path against
messaging/fastpath.py, interleaved in one run (docs/benchmarks.md, "Where the CPU goes").

    python -m bench.inprocess pieces [--calls 200] [--rounds 5] [--out bench/results/inprocess.json]
    python -m bench.inprocess profile [--requests 300] [--out bench/results/profile-process.txt]

Run against the benchmark's database after `make bench` (or `bench.run --quick`) left it
seeded: BENCH_DATABASE_URL (default …/parley_bench), BENCH_REDIS_URL. `pieces` measures, per
call, the process CPU time (time.process_time: every thread, the pool's and the background
loop's included) of:

  write    conversation lock + append of both messages + save, as messaging.services does it
           (ORM, in transaction.atomic), against fastpath.turn_write in atomic and
           fastpath.turn_write alone (autocommit: the statement is its own transaction)
  auth     accounts.auth.principal_from_access_token (ORM user + deny-list query), against
           the same checks on fastauth.user_with_revocation
  context  the agent's context read through the ORM (the last ten messages with their
           conversation, ownership in the query: what the turn read before fastpath) against
           fastpath.agent_context
  binding  each of the above on a second connection alias with psycopg server-side binding
           (OPTIONS server_side_binding=True; psycopg prepares a statement after 5 runs)

Variants take turns inside every round (round-robin, first variant rotating), each round runs
`--calls` calls per variant; reported is the median over rounds of the per-call CPU ms. Pushes
are left out of the write pieces (a no-op `publish_on_commit`): both paths push the same two
events. `profile` runs POST /messages/process through Django's test client (the whole stack:
middleware, ninja, auth, service, agent, push) under pyinstrument.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.setup import RESULTS_DIR, bench_env

SSB = "ssb"  # the server-side-binding alias


def _django() -> None:
    # The benchmark's own settings and databases, with a channel prefix of this process.
    env = dict(bench_env(), CHANNEL_PREFIX=f"parley-inprocess-{os.getpid()}")
    os.environ.update(env)
    import django

    django.setup()
    from django.db import connections

    # A second alias on the same database with server-side binding.
    settings = copy.deepcopy(connections.settings["default"])
    settings["OPTIONS"] = dict(settings.get("OPTIONS", {}), server_side_binding=True)
    settings["OPTIONS"].pop("pool", None)  # one connection is all a single thread uses
    settings["CONN_MAX_AGE"] = None
    connections.settings[SSB] = settings


def _customers(count: int) -> list[tuple[Any, int]]:
    """Bench customers with their own conversation, agent path (active)."""
    from accounts.models import User
    from messaging.models import Conversation

    rows = list(
        Conversation.objects.filter(
            status=Conversation.Status.ACTIVE, customer__username__startswith="bench-customer-"
        )
        .order_by("id")
        .values_list("customer_id", "id")[:count]
    )
    users = User.objects.in_bulk([c for c, _ in rows])
    return [(users[c], conv) for c, conv in rows]


def pieces(calls: int, rounds: int) -> dict[str, Any]:
    from django.db import connections, transaction
    from django.utils import timezone

    from accounts import auth, fastauth
    from accounts.models import RevokedAccessToken, User
    from accounts.scopes import allowed_scopes, parse_scope_string
    from accounts.services import token_pair_issue
    from accounts.tokens import (
        FAMILY_CLAIM,
        SCOPE_CLAIM,
        ParleyAccessToken,
        token_expiry,
        token_matches_password,
    )
    from core.errors import NotAuthenticated
    from messaging import fastpath
    from messaging.models import Conversation, Message

    fastpath.publish_on_commit = lambda events: None  # type: ignore[assignment]
    people = _customers(64)
    tokens = [token_pair_issue(user=u, requested_scopes=None).access_token for u, _ in people]
    reply = {
        "reply_text": "You can reset your password from the sign-in page.",
        "intent": "account",
        "confidence": 0.87,
        "metadata": {"source": "rules"},
    }
    counter = {"i": 0}

    def nxt() -> tuple[Any, int, str]:
        counter["i"] += 1
        user, conversation = people[counter["i"] % len(people)]
        return user, conversation, tokens[counter["i"] % len(tokens)]

    def orm_write(using: str) -> Callable[[], None]:
        # messaging.services.conversation_lock / conversation_append / conversation_save, with
        # the alias explicit (the service uses the default one).
        def call() -> None:
            user, conversation_id, _ = nxt()
            with transaction.atomic(using=using):
                conversation = (
                    Conversation.objects.using(using)
                    .select_for_update()
                    .filter(pk=conversation_id)
                    .order_by()
                    .first()
                )
                assert conversation is not None
                conversation.turn_count += 1
                conversation.agent_turns += 1
                now = timezone.now()
                rows = []
                for role, content, author, metadata in (
                    (Message.Role.CUSTOMER, "How do I reset my password?", user.pk, {}),
                    (Message.Role.AGENT, reply["reply_text"], None, reply["metadata"]),
                ):
                    conversation.last_seq += 1
                    rows.append(
                        Message(
                            conversation=conversation,
                            seq=conversation.last_seq,
                            role=role,
                            content=content,
                            intent=reply["intent"],
                            confidence=reply["confidence"],
                            author_id=author,
                            metadata=dict(metadata),
                            created_at=now,
                        )
                    )
                Message.objects.using(using).bulk_create(rows)
                conversation.updated_at = now
                conversation.save(
                    using=using,
                    update_fields=["status", "turn_count", "agent_turns", "last_seq", "updated_at"],
                )

        return call

    def fast_write(using: str, atomic: bool) -> Callable[[], None]:
        def call() -> None:
            user, conversation_id, _ = nxt()
            kwargs = dict(
                conversation_id=conversation_id,
                customer_id=user.pk,
                text="How do I reset my password?",
                using=using,
                **reply,
            )
            if atomic:
                with transaction.atomic(using=using):
                    written = fastpath.turn_write(**kwargs)  # type: ignore[arg-type]
            else:
                written = fastpath.turn_write(**kwargs)  # type: ignore[arg-type]
            assert written is not None

        return call

    def orm_auth(using: str) -> Callable[[], None]:
        from django.db.models import Exists

        def call() -> None:
            # accounts.auth.principal_from_access_token with the alias explicit.
            _, _, raw = nxt()
            if using == "default":
                auth.principal_from_access_token(raw)
                return
            payload = ParleyAccessToken(raw).payload  # type: ignore[arg-type]
            user = (
                User.objects.using(using)
                .filter(pk=int(payload["sub"]))
                .annotate(
                    token_revoked=Exists(
                        RevokedAccessToken.objects.using(using).filter(jti=payload["jti"])
                    )
                )
                .first()
            )
            assert user is not None
            assert not user.token_revoked  # type: ignore[attr-defined]

        return call

    def fast_auth(using: str) -> Callable[[], None]:
        def call() -> None:
            # principal_from_access_token's checks on the one-statement lookup.
            _, _, raw = nxt()
            payload = ParleyAccessToken(raw).payload  # type: ignore[arg-type]
            found = fastauth.user_with_revocation(
                user_id=int(payload["sub"]),
                jti=payload["jti"],
                family=payload[FAMILY_CLAIM],
                using=using,
            )
            if found is None or not found[0].is_active or found[1]:
                raise NotAuthenticated("Invalid token")
            user = found[0]
            if not token_matches_password(payload, user):
                raise NotAuthenticated("Invalid token")
            auth.Principal(
                user=user,
                scopes=allowed_scopes(user) & parse_scope_string(payload[SCOPE_CLAIM]),
                method="jwt",
                token_jti=payload["jti"],
                token_expires_at=token_expiry(payload),
            )

        return call

    def orm_context() -> None:
        user, conversation_id, _ = nxt()
        recent = list(
            Message.objects.filter(
                conversation_id=conversation_id, conversation__customer_id=user.pk
            )
            .select_related("conversation")
            .order_by("-seq")[: fastpath.RECENT_MESSAGES]
        )
        assert recent

    def fast_context() -> None:
        user, conversation_id, _ = nxt()
        context = fastpath.agent_context(customer_id=user.pk, conversation_id=conversation_id)
        assert context is not None

    def jwt_only() -> None:
        _, _, raw = nxt()
        ParleyAccessToken(raw)  # type: ignore[arg-type]

    variants: dict[str, Callable[[], None]] = {
        "write: ORM (lock + append + save, atomic)": orm_write("default"),
        "write: fastpath.turn_write in atomic": fast_write("default", True),
        "write: fastpath.turn_write, autocommit": fast_write("default", False),
        "auth: principal_from_access_token (ORM)": orm_auth("default"),
        "auth: same checks on fastauth.user_with_revocation": fast_auth("default"),
        "auth: JWT decode + claim checks only (simplejwt)": jwt_only,
        "context: the same reading through the ORM": orm_context,
        "context: fastpath.agent_context": fast_context,
        "write: ORM, server-side binding": orm_write(SSB),
        "write: fastpath.turn_write in atomic, server-side binding": fast_write(SSB, True),
        "write: fastpath.turn_write, autocommit, server-side binding": fast_write(SSB, False),
        "auth: ORM user + deny-list query, server-side binding": orm_auth(SSB),
        "auth: fastpath lookup, server-side binding": fast_auth(SSB),
    }
    for call in variants.values():  # warm-up: connections, prepared statements, caches
        for _ in range(20):
            call()
    per_call: dict[str, list[float]] = {name: [] for name in variants}
    db_per_call: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)

    def backend_cpu(alias: str) -> float:
        """CPU seconds of this alias's PostgreSQL backend process (same machine)."""
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            call = variants[name]
            alias = SSB if "server-side binding" in name else "default"
            db_start = backend_cpu(alias)
            start = time.process_time()
            for _ in range(calls):
                call()
            per_call[name].append(1000 * (time.process_time() - start) / calls)
            db_per_call[name].append(1000 * (backend_cpu(alias) - db_start) / calls)
        print(f"round {round_index + 1}/{rounds} done", file=sys.stderr, flush=True)
    for alias in ("default", SSB):
        connections[alias].close()
    medians = {name: round(statistics.median(v), 3) for name, v in per_call.items()}
    db_medians = {name: round(statistics.median(v), 3) for name, v in db_per_call.items()}

    def ratio(a: str, b: str) -> float:
        return round(medians[a] / medians[b], 2)

    return {
        "calls_per_round": calls,
        "rounds": rounds,
        "cpu_ms_per_call_median": medians,
        "cpu_ms_per_call_each_round": per_call,
        # The PostgreSQL backend's CPU per call (parse, plan, execute): client-side binding
        # sends every statement as new text; server-side binding lets psycopg prepare it.
        "postgres_cpu_ms_per_call_median": db_medians,
        "ratios": {
            "write ORM / fast (atomic)": ratio(
                "write: ORM (lock + append + save, atomic)",
                "write: fastpath.turn_write in atomic",
            ),
            "write ORM / fast (autocommit)": ratio(
                "write: ORM (lock + append + save, atomic)",
                "write: fastpath.turn_write, autocommit",
            ),
            "auth ORM / fast": ratio(
                "auth: principal_from_access_token (ORM)",
                "auth: same checks on fastauth.user_with_revocation",
            ),
            "context ORM / fast": ratio(
                "context: the same reading through the ORM",
                "context: fastpath.agent_context",
            ),
            "write ORM: client / server-side binding": ratio(
                "write: ORM (lock + append + save, atomic)", "write: ORM, server-side binding"
            ),
            "write fast autocommit: client / server-side binding": ratio(
                "write: fastpath.turn_write, autocommit",
                "write: fastpath.turn_write, autocommit, server-side binding",
            ),
            "auth fast: client / server-side binding": ratio(
                "auth: same checks on fastauth.user_with_revocation",
                "auth: fastpath lookup, server-side binding",
            ),
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def profile(requests: int) -> str:
    from django.test import Client
    from pyinstrument import Profiler

    from accounts.services import token_pair_issue

    people = _customers(64)
    clients = [
        (
            Client(
                HTTP_HOST="127.0.0.1",
                headers={
                    "Authorization": "Bearer "
                    + token_pair_issue(user=u, requested_scopes=None).access_token
                },
            ),
            u.pk,
            c,
        )
        for u, c in people
    ]

    def send(i: int) -> None:
        client, user_id, conversation_id = clients[i % len(clients)]
        response = client.post(
            "/api/v1/messages/process",
            {
                "message": "How do I reset my password?",
                "customer_id": user_id,
                "conversation_id": conversation_id,
            },
            content_type="application/json",
        )
        assert response.status_code == 200, response.content

    for i in range(30):
        send(i)
    # CPU per request without the profiler (its sampling costs CPU of its own).
    cpu = time.process_time()
    for i in range(requests):
        send(i)
    plain_ms = 1000 * (time.process_time() - cpu) / requests
    profiler = Profiler(interval=0.001)
    cpu = time.process_time()
    profiler.start()
    for i in range(requests):
        send(i)
    profiler.stop()
    cpu_ms = 1000 * (time.process_time() - cpu) / requests
    text = profiler.output_text(unicode=True, color=False, show_all=False, timeline=False)
    return (
        f"# {requests} POST /messages/process in-process (Django test client, PostgreSQL + "
        f"Redis): {plain_ms:.2f} CPU ms each without the profiler, {cpu_ms:.2f} with it.\n"
        f"# Shares below are wall time of one thread (CPU plus waits on PostgreSQL/Redis).\n\n"
        f"{text}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.inprocess")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pieces")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "inprocess.json")
    q = sub.add_parser("profile")
    q.add_argument("--requests", type=int, default=300)
    q.add_argument("--out", type=Path, default=RESULTS_DIR / "profile-process.txt")
    args = parser.parse_args(argv)
    _django()
    if args.command == "pieces":
        result = pieces(args.calls, args.rounds)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        keys = ("cpu_ms_per_call_median", "postgres_cpu_ms_per_call_median", "ratios")
        print(json.dumps({k: result[k] for k in keys}, indent=2))
    else:
        text = profile(args.requests)
        args.out.write_text(text)
        print(text[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
