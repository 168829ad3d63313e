"""The peer's command line (run by bench/run.py):

    python -m bench.peer seed --seed seed.json [--database-url postgres://…/parley_peer]
    python -m bench.peer serve --port 8100 [--workers 2]

`seed` recreates the peer's database (only a database named parley_peer*) and fills it with the
same ids as Parley's benchmark data (bench/seed.py's seed.json): the customers, their
conversations, and the 50- and 50 000-message history conversations, so one wrk data file
drives both servers. `serve` runs uvicorn with 2 worker processes (uvloop, httptools).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/parley_peer"
MESSAGE = "How do I reset my password?"


def asyncpg_url(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def reset_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    info = psycopg.conninfo.conninfo_to_dict(url)
    name = str(info["dbname"])
    if not name.startswith("parley_peer"):
        raise SystemExit(f"refusing to drop {name!r}: peer databases are named parley_peer*")
    with psycopg.connect(**dict(info, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _messages(conversation_id: int, count: int, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "conversation_id": conversation_id,
            "seq": seq,
            "role": "customer" if seq % 2 else "agent",
            "content": MESSAGE if seq % 2 else f"Seeded agent reply number {seq}.",
            "intent": "account",
            "confidence": 0.9,
            "author_id": None,
            "metadata": "{}",
            "created_at": now,
        }
        for seq in range(1, count + 1)
    ]


async def _seed(url: str, data: dict[str, Any]) -> dict[str, Any]:
    import asyncpg
    from sqlalchemy.ext.asyncio import create_async_engine

    from bench.peer.tables import Base

    engine = create_async_engine(asyncpg_url(url))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()

    now = datetime.now(UTC)
    customers = data["customers"]
    history = data["history"]
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "users",
                records=[(c["id"], f"peer-customer-{c['id']}", True, False) for c in customers],
                columns=["id", "username", "is_active", "is_staff"],
            )
            await conn.copy_records_to_table(
                "conversations",
                records=[
                    (c["conversation_id"], c["id"], "active", 0, 0, now, now) for c in customers
                ]
                + [
                    (history["small"], history["customer_id"], "active", 50, 50, now, now),
                    (history["large"], history["customer_id"], "active", 50_000, 50_000, now, now),
                ],
                columns=[
                    "id",
                    "customer_id",
                    "status",
                    "turn_count",
                    "last_seq",
                    "created_at",
                    "updated_at",
                ],
            )
            rows = _messages(history["small"], 50, now) + _messages(history["large"], 50_000, now)
            columns = list(rows[0])
            await conn.copy_records_to_table(
                "messages", records=[tuple(r[c] for c in columns) for r in rows], columns=columns
            )
            # A deny-list that is not empty, like a live service's.
            await conn.execute(
                "INSERT INTO revoked_tokens (jti, user_id, expires_at) "
                "SELECT 'seeded-' || g, $1, $2 FROM generate_series(1, 100) g",
                customers[0]["id"],
                now + timedelta(days=1),
            )
            for table in ("conversations", "messages"):
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - fixed names
                    f"(SELECT MAX(id) FROM {table}))"
                )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return {"customers": len(customers), "history": history}


def check_seq(url: str, conversation_id: int) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url) as conn:
        seqs = [
            r[0]
            for r in conn.execute(
                "SELECT seq FROM messages WHERE conversation_id = %s ORDER BY seq",
                (conversation_id,),
            )
        ]
        last = conn.execute(
            "SELECT last_seq FROM conversations WHERE id = %s", (conversation_id,)
        ).fetchone()
    return {
        "conversation_id": conversation_id,
        "messages": len(seqs),
        "gap_free": seqs == list(range(1, len(seqs) + 1))
        and last is not None
        and last[0] == len(seqs),
    }


def serve(port: int, workers: int, host: str = "127.0.0.1") -> None:
    import uvicorn

    uvicorn.run(
        "bench.peer.app:app",
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        server_header=False,
        log_level=os.environ.get("UVICORN_LOG_LEVEL", "warning"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.peer")
    sub = parser.add_subparsers(dest="command", required=True)
    p_seed = sub.add_parser("seed")
    p_seed.add_argument("--seed", type=Path, required=True)
    p_seed.add_argument("--database-url", default=os.environ.get("PEER_DB_URL", DEFAULT_URL))
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--port", type=int, default=8100)
    p_serve.add_argument("--workers", type=int, default=2)
    p_chk = sub.add_parser("check-seq")
    p_chk.add_argument("--conversation", type=int, required=True)
    p_chk.add_argument("--database-url", default=os.environ.get("PEER_DB_URL", DEFAULT_URL))
    args = parser.parse_args(argv)
    if args.command == "seed":
        reset_database(args.database_url)
        data = json.loads(args.seed.read_text())
        print(json.dumps(asyncio.run(_seed(args.database_url, data))))
    elif args.command == "check-seq":
        print(json.dumps(check_seq(args.database_url, args.conversation)))
    else:
        serve(args.port, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
