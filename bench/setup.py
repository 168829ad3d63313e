"""Setting up a benchmark run: the environment the servers run with, a fresh database and Redis
database of the benchmark's own, helper subprocesses, and a description of the machine."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench import harness
from config.serving import serve

BASE_DIR = serve.BASE_DIR
RESULTS_DIR = BASE_DIR / "bench" / "results"

DEFAULT_BENCH_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/parley_bench"
DEFAULT_BENCH_REDIS_URL = "redis://127.0.0.1:6379/3"


def bench_env(args: argparse.Namespace | None = None) -> dict[str, str]:
    """The production profile's environment on the benchmark's own databases, with the limits
    that would change the measured path lifted (`args` is accepted for the callers' sake)."""
    return serve.production_env(
        {
            "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_DATABASE_URL),
            "REDIS_URL": os.environ.get("BENCH_REDIS_URL", DEFAULT_BENCH_REDIS_URL),
            # Pub/sub channels ignore Redis database numbers: a prefix of our own keeps other
            # Parley processes on this Redis (tests, make serve) out of our groups.
            "CHANNEL_PREFIX": f"parley-bench-{os.getpid()}",
            "CACHE_KEY_PREFIX": "parley-bench",
            "RATE_LIMIT_MESSAGES": "1000000/m",
            # The fan-out and held-connection scenarios open hundreds of sockets per customer.
            "WS_MAX_SOCKETS_PER_USER": "1000000",
            "AGENT_MAX_TURNS": "1000000000",
            "ACCESS_TOKEN_MINUTES": "180",
            "LOG_LEVEL": "WARNING",
            "SECURE_SSL_REDIRECT": "0",
            # The burst scenario's routing; no other scenario hands off, so none is affected.
            "ASSIGNMENT_MODE": "auto",
        }
    )


# --- setup ------------------------------------------------------------------------------------


def reset_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    info = psycopg.conninfo.conninfo_to_dict(url)
    name = info["dbname"]
    if not str(name).startswith("parley_bench"):
        raise SystemExit(f"refusing to drop {name!r}: bench databases are named parley_bench*")
    with psycopg.connect(**dict(info, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def run_json(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        command, env=env, cwd=BASE_DIR, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{completed.stdout}{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def machine(env: dict[str, str]) -> dict[str, Any]:
    import importlib.metadata as md

    import psycopg
    import redis

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    # The server's own database: the benchmark's may not exist yet.
    info = psycopg.conninfo.conninfo_to_dict(env["DATABASE_URL"])
    with psycopg.connect(**dict(info, dbname="postgres")) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        pg_max_conn = conn.execute("SHOW max_connections").fetchone()[0]  # type: ignore[index]
    client = redis.Redis.from_url(env["REDIS_URL"])
    redis_version = client.info("server")["redis_version"]
    client.close()
    wrk_version = (
        subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        .stdout.split("\n")[0]
        .strip()
    )
    versions = {}
    for package in (
        "Django",
        "django-ninja",
        "granian",
        "uvicorn",
        "gunicorn",
        "channels",
        "channels-redis",
        "redis",
        "psycopg",
        "psycopg-pool",
        "websockets",
    ):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    return {
        "nproc": serve.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "postgresql_max_connections": pg_max_conn,
        "redis": redis_version,
        "wrk": wrk_version,
        "packages": versions,
        "load_average_at_start": harness.load_average(),
    }
