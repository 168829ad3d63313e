"""The benchmark's data, made inside Django (run by bench/run.py with the server's environment).

    python -m bench.seed seed --customers 256 --out seed.json
    python -m bench.seed capture-sql --seed seed.json --out-dir DIR
    python -m bench.seed check-seq --conversation ID

Ids are explicit and contiguous (customers from CUSTOMER_BASE, their conversations from
CONVERSATION_BASE), so pgbench clients can address "their own" rows with :client_id. Tokens
are real access tokens issued by accounts.services.token_pair_issue.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

CUSTOMER_BASE = 100_001
CONVERSATION_BASE = 200_001
# The customer/conversation whose request is captured for pgbench: values chosen so that no
# id, seq or counter in its SQL can be mistaken for another (see capture_sql).
CAPTURE_USER_ID = 900_001
CAPTURE_CONVERSATION_ID = 800_001
CAPTURE_LAST_SEQ = 70_000
CAPTURE_TURN_COUNT = 35_000

# Recognised by the rule-based agent as an `account` question with high confidence, so every
# turn takes the agent path (no escalation) -- checked by `seed`.
BENCH_MESSAGE = "How do I reset my password?"


def _setup() -> None:
    import django

    django.setup()


def _token(user: Any) -> str:
    from accounts.services import token_pair_issue

    # The harness mints its tokens directly. Staff tokens carry the second factor in `amr`, as
    # a sign-in through POST /auth/token/mfa would: with STAFF_MFA_REQUIRED=1 (production)
    # staff routes refuse anything less, and these accounts have no authenticator to use.
    amr = ("pwd", "otp") if user.is_staff else ("pwd",)
    return token_pair_issue(user=user, requested_scopes=None, amr=amr).access_token


def _fix_sequences() -> None:
    """Explicit ids do not move PostgreSQL's sequences; move them past what we inserted."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in ("accounts_user", "messaging_conversation", "messaging_message"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - fixed names
                f"GREATEST((SELECT COALESCE(MAX(id), 1) FROM {table}), 1))"
            )


def _messages(conversation: Any, count: int, start_seq: int = 1) -> list[Any]:
    from django.utils import timezone

    from messaging.models import Message

    now = timezone.now()
    rows = []
    for seq in range(start_seq, start_seq + count):
        customer = seq % 2 == 1
        rows.append(
            Message(
                conversation=conversation,
                seq=seq,
                role=Message.Role.CUSTOMER if customer else Message.Role.AGENT,
                content=BENCH_MESSAGE if customer else f"Seeded agent reply number {seq}.",
                intent="account",
                confidence=0.9,
                created_at=now,
            )
        )
    return rows


def seed(customers: int, out: Path) -> dict[str, Any]:
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from accounts.models import User
    from messaging.agent import ConversationSnapshot, get_agent
    from messaging.models import Conversation, Message

    reply = get_agent()
    from asgiref.sync import async_to_sync

    probe = async_to_sync(reply.respond)(
        ConversationSnapshot(id=None, customer_id=1, turn_count=0, recent_messages=()),
        BENCH_MESSAGE,
    )
    if probe.escalate:
        raise SystemExit(f"bench message escalates ({probe.intent}); pick another")

    password = make_password(None)  # unusable: these accounts sign in only with our tokens
    with transaction.atomic():
        users = User.objects.bulk_create(
            [
                User(id=CUSTOMER_BASE + i, username=f"bench-customer-{i}", password=password)
                for i in range(customers)
            ]
            + [
                User(id=CAPTURE_USER_ID, username="bench-capture", password=password),
                User(
                    id=CAPTURE_USER_ID + 1,
                    username="bench-operator",
                    password=password,
                    is_staff=True,
                ),
            ]
        )
        conversations = Conversation.objects.bulk_create(
            [
                Conversation(id=CONVERSATION_BASE + i, customer_id=CUSTOMER_BASE + i)
                for i in range(customers)
            ]
        )
        # History: conversation of customer 0 gets none (it is written to by scenario 1);
        # two dedicated conversations of 50 and 50 000 messages belong to customer 1.
        small = Conversation.objects.create(customer_id=CUSTOMER_BASE + 1, last_seq=50)
        large = Conversation.objects.create(customer_id=CUSTOMER_BASE + 1, last_seq=50_000)
        Message.objects.bulk_create(_messages(small, 50), batch_size=5000)
        Message.objects.bulk_create(_messages(large, 50_000), batch_size=5000)
        capture = Conversation.objects.create(
            id=CAPTURE_CONVERSATION_ID,
            customer_id=CAPTURE_USER_ID,
            last_seq=CAPTURE_LAST_SEQ,
            turn_count=CAPTURE_TURN_COUNT,
        )
        Message.objects.bulk_create(
            _messages(capture, 10, start_seq=CAPTURE_LAST_SEQ - 9), batch_size=5000
        )
    _fix_sequences()
    by_id = {u.pk: u for u in users}
    data = {
        "message": BENCH_MESSAGE,
        "customers": [
            {
                "id": CUSTOMER_BASE + i,
                "token": _token(by_id[CUSTOMER_BASE + i]),
                "conversation_id": conversations[i].pk,
            }
            for i in range(customers)
        ],
        "history": {
            "customer_id": CUSTOMER_BASE + 1,
            "small": small.pk,
            "large": large.pk,
        },
        "capture": {
            "customer_id": CAPTURE_USER_ID,
            "token": _token(by_id[CAPTURE_USER_ID]),
            "conversation_id": CAPTURE_CONVERSATION_ID,
        },
        "operator": {"id": CAPTURE_USER_ID + 1, "token": _token(by_id[CAPTURE_USER_ID + 1])},
    }
    out.write_text(json.dumps(data))
    return data


# --- SQL capture → pgbench ------------------------------------------------------------------


def capture_sql(seed_file: Path, out_dir: Path) -> dict[str, Any]:
    """Run one real POST /messages/process through Django's full stack (test client: same
    middleware, auth, service) and record every SQL statement with the transaction state it
    ran in. Then write pgbench scripts that issue exactly those statements with the ids, seqs
    and counters turned into pgbench variables.
    """
    from django.db import connection
    from django.test import Client

    from messaging.models import Conversation, Message

    data = json.loads(seed_file.read_text())
    capture = data["capture"]
    # Back to the seeded state, so the seqs and counters are the ones substituted below.
    Message.objects.filter(
        conversation_id=CAPTURE_CONVERSATION_ID, seq__gt=CAPTURE_LAST_SEQ
    ).delete()
    Conversation.objects.filter(pk=CAPTURE_CONVERSATION_ID).update(
        last_seq=CAPTURE_LAST_SEQ, turn_count=CAPTURE_TURN_COUNT
    )
    statements: list[dict[str, Any]] = []

    def recorder(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(
            {
                "sql": sql,
                "params": params,
                "many": many,
                "atomic": context["connection"].in_atomic_block,
            }
        )
        return execute(sql, params, many, context)

    client = Client(HTTP_HOST="127.0.0.1")
    body = {
        "message": data["message"],
        "customer_id": capture["customer_id"],
        "conversation_id": capture["conversation_id"],
    }
    with connection.execute_wrapper(recorder):
        response = client.post(
            "/api/v1/messages/process",
            data=json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {capture['token']}",
        )
    if response.status_code != 200:
        raise SystemExit(f"capture request failed: {response.status_code} {response.content!r}")
    reply = response.json()
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered = [_render(connection, s) for s in statements]
    (out_dir / "captured.sql").write_text(
        "".join(
            f"-- atomic={s['atomic']}\n{r};\n" for s, r in zip(statements, rendered, strict=True)
        )
    )
    (out_dir / "pgbench_process.sql").write_text(_pgbench_script(statements, rendered, reply))
    (out_dir / "pgbench_process_one.sql").write_text(
        _pgbench_script(statements, rendered, reply, one_conversation=True)
    )
    info = {
        "statements": len(statements),
        "response": reply,
        "script": str(out_dir / "pgbench_process.sql"),
    }
    (out_dir / "capture.json").write_text(json.dumps(info, indent=2))
    return info


def _render(connection: Any, statement: dict[str, Any]) -> str:
    """The statement with its parameters inlined, as psycopg would send them."""
    from psycopg import ClientCursor

    raw = connection.connection  # the psycopg connection under Django's wrapper
    with ClientCursor(raw) as cursor:
        params = statement["params"]
        if statement["many"]:
            raise SystemExit("executemany in the captured request: not supported")
        return cursor.mogrify(statement["sql"], params).strip()


def _pgbench_script(
    statements: list[dict[str, Any]],
    rendered: list[str],
    reply: dict[str, Any],
    *,
    one_conversation: bool = False,
) -> str:
    """pgbench script: ids → :uid/:cid from :client_id; seq/turn counters read from the locked
    conversation row (\\gset), exactly as the service does; BEGIN/COMMIT where Django's atomic
    block began and ended."""
    import re

    seq1, seq2 = CAPTURE_LAST_SEQ + 1, CAPTURE_LAST_SEQ + 2
    substitutions = [
        (str(CAPTURE_USER_ID), ":uid"),
        (str(CAPTURE_CONVERSATION_ID), ":cid"),
        (str(seq2), ":s2"),
        (str(seq1), ":s1"),
        (str(CAPTURE_TURN_COUNT + 1), ":t1"),
        # The fast path (messaging.fastpath.turn_write) returns the messages' ids, which the
        # webhook outbox's payload then carries: read back with \gset below.
        (str(reply["metadata"]["customer_message_id"]), ":p_id1"),
        (str(reply["message_id"]), ":p_id2"),
    ]
    lines = [
        "-- Generated by bench/seed.py capture-sql from one real POST /api/v1/messages/process.",
        "-- Each pgbench client writes to its own customer's conversation (:client_id), as in",
        "-- scenario 1, unless the next two lines pin one conversation (scenario 2).",
        f"\\set uid {CUSTOMER_BASE} + :client_id"
        if not one_conversation
        else f"\\set uid {CUSTOMER_BASE}",
        f"\\set cid {CONVERSATION_BASE} + :client_id"
        if not one_conversation
        else f"\\set cid {CONVERSATION_BASE}",
    ]
    in_tx = False
    locked = False
    for statement, sql in zip(statements, rendered, strict=True):
        if statement["atomic"] and not in_tx:
            lines.append("BEGIN;")
            in_tx = True
        elif not statement["atomic"] and in_tx:
            lines.append("COMMIT;")
            in_tx = False
        for value, variable in substitutions:
            sql = re.sub(rf"(?<![\w.:']){value}(?![\w.'])", variable, sql)
        is_lock = "FOR UPDATE" in sql and '"messaging_conversation"' in sql and not locked
        if is_lock:
            locked = True
            # Keep the locked row's counters (p_last_seq, p_turn_count) for what follows.
            lines.append(" ".join(sql.split()) + " \\gset p_")
            lines += [
                "\\set s1 :p_last_seq + 1",
                "\\set s2 :p_last_seq + 2",
                "\\set t1 :p_turn_count + 1",
            ]
            continue
        flat = " ".join(sql.split())
        if flat.startswith("WITH c AS (UPDATE") and not locked:
            # turn_write: the UPDATE takes the lock and yields the seqs. Its final SELECT
            # returns one row per message; pgbench's \gset needs one row, so the script reads
            # the same values aggregated (same plan for the writes).
            head, _, _ = flat.rpartition(" SELECT m.id, m.seq,")
            aggregated = (
                "SELECT min(m.id) AS id1, max(m.id) AS id2, max(c.last_seq) AS last_seq "
                "FROM m CROSS JOIN c"
            )
            lines.append(f"{head} {aggregated} \\gset p_")
            lines += ["\\set s1 :p_last_seq - 1", "\\set s2 :p_last_seq"]
            locked = True
            continue
        lines.append(flat + ";")
    if in_tx:
        lines.append("COMMIT;")
    script = "\n".join(lines) + "\n"
    if locked and ":p_id1" in script:
        # The webhook outbox's event ids are unique: derive them from the messages' ids (one
        # event per message, in order), or every transaction after the first would fail.
        event_ids = iter((":p_id1", ":p_id2"))
        script = re.sub(r"msg_[0-9a-f]{32}", lambda _m: f"msg_{next(event_ids, '')}", script)
    leftovers = [
        str(v)
        for v in (CAPTURE_USER_ID, CAPTURE_CONVERSATION_ID, reply["message_id"])
        if re.search(rf"(?<![\w.]){v}(?![\w.])", script)
    ]
    if leftovers:
        raise SystemExit(f"pgbench script still holds captured ids {leftovers}:\n{script}")
    return script


def attack_users() -> dict[str, Any]:
    """For .ci/attack: a customer with a conversation, an operator and a superuser, created or
    reset (idempotent: CI reuses its database), and an access token for each."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    from accounts.models import User
    from messaging.models import Conversation

    out: dict[str, Any] = {}
    for role, staff, superuser in (
        ("customer", False, False),
        ("operator", True, False),
        ("superuser", True, True),
        ("revoker", False, False),
    ):
        user, _ = User.objects.update_or_create(
            username=f"attack-{role}",
            defaults={
                "is_staff": staff,
                "is_superuser": superuser,
                "is_active": True,
                "email": f"attack-{role}@example.com",
                "password": make_password(None),
            },
        )
        if staff and not superuser:
            group = Group.objects.filter(name="Operators").first()
            if group is not None:
                user.groups.add(group)
        out[role] = {"id": user.pk, "token": _token(user)}
    conversation = Conversation.objects.filter(customer_id=out["customer"]["id"]).first()
    if conversation is None:
        conversation = Conversation.objects.create(customer_id=out["customer"]["id"])
    out["customer"]["conversation_id"] = conversation.pk
    return out


def check_seq(conversation_id: int) -> dict[str, Any]:
    from messaging.models import Conversation, Message

    seqs = list(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("seq")
        .values_list("seq", flat=True)
    )
    conversation = Conversation.objects.get(pk=conversation_id)
    expected = list(range(1, len(seqs) + 1))
    return {
        "conversation_id": conversation_id,
        "messages": len(seqs),
        "last_seq": conversation.last_seq,
        "gap_free": seqs == expected and conversation.last_seq == len(seqs),
        "duplicates": len(seqs) - len(set(seqs)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.seed")
    sub = parser.add_subparsers(dest="command", required=True)
    p_seed = sub.add_parser("seed")
    p_seed.add_argument("--customers", type=int, default=256)
    p_seed.add_argument("--out", type=Path, required=True)
    p_cap = sub.add_parser("capture-sql")
    p_cap.add_argument("--seed", type=Path, required=True)
    p_cap.add_argument("--out-dir", type=Path, required=True)
    sub.add_parser("attack-users")
    p_chk = sub.add_parser("check-seq")
    p_chk.add_argument("--conversation", type=int, required=True)
    args = parser.parse_args(argv)
    _setup()
    if args.command == "seed":
        data = seed(args.customers, args.out)
        print(json.dumps({"customers": len(data["customers"]), "history": data["history"]}))
    elif args.command == "capture-sql":
        print(json.dumps(capture_sql(args.seed, args.out_dir)))
    elif args.command == "attack-users":
        print(json.dumps(attack_users()))
    else:
        print(json.dumps(check_seq(args.conversation)))


if __name__ == "__main__":
    main(sys.argv[1:])
