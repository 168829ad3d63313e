"""`make bench`: Parley's benchmarks against the production profile.

    .venv/bin/python -m bench.run [--quick] [--runs 3] [--duration 10] [--topology split]

It recreates its own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/parley_bench -- never DATABASE_URL) and uses its own Redis
database and channel prefix (BENCH_REDIS_URL, default redis://127.0.0.1:6379/3), seeds its own
customers and tokens through Django (bench/seed.py), starts `bench.serve` with
RATE_LIMIT_MESSAGES=1000000/m (the per-user limit would otherwise turn the load into 429s) and
AGENT_MAX_TURNS=10^9 (otherwise every conversation escalates after 20 turns and the agent is no
longer on the measured path), then measures:

1. POST /messages/process, 64 connections, each request on its customer's own conversation
2. the same, every request on one conversation (row-lock contention) + seq gap-free check
3. GET /conversations/{id}/history?limit=50 on 50- and 50 000-message conversations
4. live push latency, 200 websocket clients (one conversation each; and all on one)
5. idle authenticated websockets held by one ASGI process, and its RSS
6. ceilings: GET /health on the same server; pgbench with 64 connections running the SQL of
   one process request (captured from Django, bench/seed.py capture-sql)

wrk figures are the median of --runs runs (default 3); every run is kept in the JSON. CPU
time of the server processes per request is recorded too: it moves less than req/s when the
machine is shared. Writes bench/results/results.json and summary.md (--quick:
preliminary.json / preliminary.md) and splices summary.md into README.md between
`<!-- bench:start -->` and `<!-- bench:end -->` when both markers exist (full runs only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import harness, serve, ws

BASE_DIR = serve.BASE_DIR
RESULTS_DIR = BASE_DIR / "bench" / "results"
README = BASE_DIR / "README.md"
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"

DEFAULT_BENCH_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/parley_bench"
DEFAULT_BENCH_REDIS_URL = "redis://127.0.0.1:6379/3"
CONNECTIONS = 64
CUSTOMERS = 256  # > CONNECTIONS: wrk threads take disjoint shares, rotating per request
PUSH_CLIENTS = 200
HELD_SOCKETS = 1000

TARGETS = {
    "process_vs_pgbench": 0.5,
    "push_p99_ms": 50.0,
    "held_sockets": 1000,
    "history_p50_growth": 1.5,  # 50 000 vs 50 messages: "flat" = within noise
}


def bench_env(args: argparse.Namespace) -> dict[str, str]:
    import os

    return serve.production_env(
        {
            "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_DATABASE_URL),
            "REDIS_URL": os.environ.get("BENCH_REDIS_URL", DEFAULT_BENCH_REDIS_URL),
            # Pub/sub channels ignore Redis database numbers: a prefix of our own keeps other
            # Parley processes on this Redis (tests, make serve) out of our groups.
            "CHANNEL_PREFIX": f"parley-bench-{os.getpid()}",
            "CACHE_KEY_PREFIX": "parley-bench",
            "RATE_LIMIT_MESSAGES": "1000000/m",
            "AGENT_MAX_TURNS": "1000000000",
            "ACCESS_TOKEN_MINUTES": "180",
            "LOG_LEVEL": "WARNING",
            "SECURE_SSL_REDIRECT": "0",
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
    with psycopg.connect(env["DATABASE_URL"]) as conn:
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


# --- pgbench ------------------------------------------------------------------------------


def pgbench(script: Path, *, url: str, clients: int, duration: float) -> dict[str, Any]:
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(url)
    command = [
        harness.require_tool("pgbench", "postgresql-client"),
        "-n",
        "-c",
        str(clients),
        "-j",
        "2",
        "-T",
        str(max(1, round(duration))),
        "-f",
        str(script),
        "-h",
        str(info.get("host", "127.0.0.1")),
        "-p",
        str(info.get("port", 5432)),
        "-U",
        str(info.get("user", "postgres")),
        str(info["dbname"]),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    out = completed.stdout + completed.stderr
    tps = re.search(r"tps = ([\d.]+) \(without initial", out)
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if completed.returncode != 0 or tps is None:
        raise RuntimeError(f"pgbench failed ({completed.returncode}):\n{out}")
    return {
        "tps": float(tps.group(1)),
        "latency_avg_ms": float(latency.group(1)) if latency else None,
        "failed": int(failed.group(1)) if failed else 0,
    }


def median_pgbench(runs: list[dict[str, Any]]) -> dict[str, Any]:
    import statistics

    return {
        "runs": len(runs),
        "tps": round(statistics.median(r["tps"] for r in runs), 1),
        "latency_avg_ms": round(statistics.median(r["latency_avg_ms"] for r in runs), 2),
        "failed_total": sum(r["failed"] for r in runs),
        "each": runs,
    }


# --- the run -----------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env = bench_env(args)
        self.work = Path(tempfile.mkdtemp(prefix="parley-bench-"))
        self.results: dict[str, Any] = {"scenarios": {}, "ceilings": {}}
        self.server: harness.Server | None = None

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

    # setup
    def setup(self) -> None:
        self.log(f"fresh database {self.env['DATABASE_URL'].rsplit('/', 1)[1]}, migrate, seed")
        reset_database(self.env["DATABASE_URL"])
        flush_redis(self.env["REDIS_URL"])
        serve.prepare(self.env, quiet=True)
        seed_file = self.work / "seed.json"
        run_json(
            [
                sys.executable,
                "-m",
                "bench.seed",
                "seed",
                "--customers",
                str(CUSTOMERS),
                "--out",
                str(seed_file),
            ],
            self.env,
        )
        self.seed = json.loads(seed_file.read_text())
        capture = run_json(
            [
                sys.executable,
                "-m",
                "bench.seed",
                "capture-sql",
                "--seed",
                str(seed_file),
                "--out-dir",
                str(self.work / "sql"),
            ],
            self.env,
        )
        self.results["captured_sql"] = {
            "statements": capture["statements"],
            "pgbench_script": (self.work / "sql" / "pgbench_process.sql").read_text(),
        }
        self.customers_tsv = harness.write_customers_tsv(
            self.seed["customers"], self.work / "customers.tsv"
        )
        history = self.seed["history"]
        history_customer = next(
            c for c in self.seed["customers"] if c["id"] == history["customer_id"]
        )
        self.history_tsv = harness.write_customers_tsv(
            [history_customer], self.work / "history.tsv"
        )

    def start_server(self) -> None:
        http_port = harness.free_port()
        ws_port = (
            harness.free_port()
            if self.args.topology == "split"
            and getattr(self.args, "front", "none") in (None, "none")
            else http_port
        )
        server_args = [
            "--topology",
            self.args.topology,
            "--port",
            str(http_port),
            "--ws-port",
            str(ws_port),
        ]
        if self.args.wsgi_server:
            server_args += ["--wsgi-server", self.args.wsgi_server]
        if self.args.threads:
            server_args += ["--threads", str(self.args.threads)]
        server_args += ["--front", getattr(self.args, "front", None) or "none"]
        self.server = harness.Server(server_args, self.env, http_port, ws_port)
        self.server.start(self.work / "server.log")
        self.http_url = f"http://127.0.0.1:{http_port}"
        self.ws_url = f"ws://127.0.0.1:{ws_port}"
        described = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from bench import serve; "
                "print(serve.plan(serve.build_parser().parse_args(sys.argv[1:])).description)",
                *server_args,
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=BASE_DIR,
        ).stdout.strip()
        self.results["topology"] = described
        self.log(f"serving: {described}")

    # wrk scenarios
    def wrk_scenario(
        self,
        name: str,
        *,
        mode: str,
        data: Path | None = None,
        extra: str = "-",
        url: str | None = None,
        connections: int = CONNECTIONS,
    ) -> dict[str, Any]:
        assert self.server is not None
        url = url or self.http_url
        pids = self.server.pids
        harness.wrk(
            url,
            mode=mode,
            connections=connections,
            duration=self.args.warmup,
            data_file=data,
            extra=extra,
        )
        runs = [
            harness.wrk(
                url,
                mode=mode,
                connections=connections,
                duration=self.args.duration,
                data_file=data,
                extra=extra,
                cpu_pids=pids,
            )
            for _ in range(self.args.runs)
        ]
        summary = harness.median_run(runs)
        summary["connections"] = connections
        self.log(
            f"{name}: {summary['rps']:.0f} req/s, p50 {summary['p50_ms']} ms, "
            f"p99 {summary['p99_ms']} ms, errors {summary['errors_total']}, "
            f"{summary['cpu_ms_per_request']} CPU ms/req"
        )
        return summary

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.results["machine"] = machine(self.env)
        self.results["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.results["mode"] = "quick (preliminary)" if self.args.quick else "full"
        self.results["settings"] = {
            "runs": self.args.runs,
            "duration_s": self.args.duration,
            "warmup_s": self.args.warmup,
            "connections": CONNECTIONS,
            "RATE_LIMIT_MESSAGES": self.env["RATE_LIMIT_MESSAGES"],
            "AGENT_MAX_TURNS": self.env["AGENT_MAX_TURNS"],
        }
        self.setup()
        self.start_server()
        only = set(self.args.only or [])

        def wanted(key: str) -> bool:
            return not only or key in only

        s, c = self.results["scenarios"], self.results["ceilings"]
        try:
            if wanted("ceilings"):
                c["health"] = self.wrk_scenario(
                    "ceiling GET /health", mode="get", url=f"{self.http_url}/health"
                )
            if wanted("1"):
                s["1_process_distinct"] = self.wrk_scenario(
                    "1 process, distinct conversations", mode="process", data=self.customers_tsv
                )
            if wanted("2"):
                s["2_process_one_conversation"] = self.wrk_scenario(
                    "2 process, one conversation", mode="process_one", data=self.customers_tsv
                )
                s["2_process_one_conversation"]["seq_check"] = run_json(
                    [
                        sys.executable,
                        "-m",
                        "bench.seed",
                        "check-seq",
                        "--conversation",
                        str(self.seed["customers"][0]["conversation_id"]),
                    ],
                    self.env,
                )
            if wanted("3"):
                for label in ("small", "large"):
                    s[f"3_history_{label}"] = self.wrk_scenario(
                        f"3 history limit=50, {label}",
                        mode="history",
                        data=self.history_tsv,
                        extra=str(self.seed["history"][label]),
                    )
                    s[f"3_history_{label}"]["conversation_messages"] = (
                        50 if label == "small" else 50_000
                    )
            if wanted("ceilings"):
                c["pgbench_distinct"] = self.pgbench("pgbench_process.sql")
                c["pgbench_one_conversation"] = self.pgbench("pgbench_process_one.sql")
            if wanted("4"):
                s["4_push_latency"] = self.push()
            if wanted("5"):
                s["5_held_websockets"] = self.held()
        finally:
            assert self.server is not None
            self.results["server_exit_code"] = self.server.stop()
        self.results["load_average_at_end"] = harness.load_average()
        self.results["elapsed_s"] = round(time.monotonic() - started, 1)
        self.results["ratios"] = ratios(self.results)
        return self.results

    def pgbench(self, script: str) -> dict[str, Any]:
        path = self.work / "sql" / script
        pgbench(path, url=self.env["DATABASE_URL"], clients=CONNECTIONS, duration=self.args.warmup)
        runs = [
            pgbench(
                path, url=self.env["DATABASE_URL"], clients=CONNECTIONS, duration=self.args.duration
            )
            for _ in range(self.args.runs)
        ]
        result = median_pgbench(runs)
        result["clients"] = CONNECTIONS
        self.log(f"pgbench {script}: {result['tps']} tps")
        return result

    def push(self) -> dict[str, Any]:
        common = {
            "http_url": self.http_url,
            "ws_url": self.ws_url,
            "customers": self.seed["customers"],
            "message": self.seed["message"],
        }
        results = {}
        for label, fanout, messages in (
            ("one_conversation_each", False, 100 if self.args.quick else 600),
            ("fanout_one_conversation", True, 5 if self.args.quick else 20),
        ):
            result = asyncio.run(
                ws.push_latency(
                    clients=PUSH_CLIENTS, messages=messages, senders=8, fanout=fanout, **common
                )
            )
            results[label] = result
            self.log(
                f"4 push latency ({label}): {json.dumps(result.get('after_response', result))}"
            )
        return results

    def held(self) -> dict[str, Any]:
        assert self.server is not None
        pids = self.server.asgi_pids()
        ws_pid = pids[0] if pids else None

        def rss() -> float:
            return harness.rss_mib(ws_pid) if ws_pid else 0.0

        result = asyncio.run(
            ws.held_connections(
                http_url=self.http_url,
                ws_url=self.ws_url,
                customers=self.seed["customers"],
                message=self.seed["message"],
                count=HELD_SOCKETS,
                conversations=50,
                idle_seconds=6 if self.args.quick else 15,
                rss=rss,
            )
        )
        result["ws_processes"] = len(pids)
        self.log(f"5 held websockets: {json.dumps(result)}")
        return result


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    s, c = results["scenarios"], results["ceilings"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    out: dict[str, Any] = {}
    one = s.get("1_process_distinct", {}).get("rps")
    two = s.get("2_process_one_conversation", {}).get("rps")
    out["1_vs_pgbench"] = ratio(one, c.get("pgbench_distinct", {}).get("tps"))
    out["2_vs_pgbench"] = ratio(two, c.get("pgbench_one_conversation", {}).get("tps"))
    out["1_vs_health"] = ratio(one, c.get("health", {}).get("rps"))
    out["2_vs_health"] = ratio(two, c.get("health", {}).get("rps"))
    small = s.get("3_history_small", {})
    large = s.get("3_history_large", {})
    out["3_history_p50_large_vs_small"] = ratio(large.get("p50_ms"), small.get("p50_ms"))
    out["3_history_small_vs_health"] = ratio(small.get("rps"), c.get("health", {}).get("rps"))
    out["3_history_large_vs_health"] = ratio(large.get("rps"), c.get("health", {}).get("rps"))
    return out


# --- reporting -------------------------------------------------------------------------------


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        value = f"{value:,.0f}" if value >= 100 else f"{value:.3g}" if value < 1 else f"{value:.1f}"
    return f"{value}{suffix}"


def _met(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**missed**")


def markdown(results: dict[str, Any]) -> str:
    s, c, r, m = results["scenarios"], results["ceilings"], results["ratios"], results["machine"]
    quick = results["mode"].startswith("quick")
    # Busy means other work was competing for the cores when the run started. The load at the
    # end is the benchmark's own (wrk, the servers, PostgreSQL), so it says nothing about that.
    load = m["load_average_at_start"][0]
    busy = load > 0.5 * m["nproc"]
    lines = []
    # No heading: the README section that embeds this has its own.
    if quick:
        lines += ["**Preliminary: a quick harness run (`--quick`).**", ""]
    elif busy:
        lines += [
            f"**Preliminary: the machine was busy (load average {load:.1f} on "
            f"{m['nproc']} cores at the start); rerun `make bench` on a quiet machine.**",
            "",
        ]
    lines.append(
        f"`make bench`, {results['started_at']}: {m['nproc']} × {m['cpu_model']}, "
        f"PostgreSQL {m['postgresql']}, Redis {m['redis']}, Python {m['python']}, "
        f"{m['wrk']}. Load average at start {m['load_average_at_start']}, at end "
        f"{results.get('load_average_at_end')}. Server: {results.get('topology')}. "
        f"Median of {results['settings']['runs']} runs of {results['settings']['duration_s']} s, "
        f"{results['settings']['connections']} connections; "
        f"RATE_LIMIT_MESSAGES={results['settings']['RATE_LIMIT_MESSAGES']} and "
        f"AGENT_MAX_TURNS={results['settings']['AGENT_MAX_TURNS']} so neither the rate limit "
        "nor escalation changes the measured path. Raw figures: `bench/results/*.json`; "
        "method, profile and fixes: [docs/benchmarks.md](docs/benchmarks.md)."
    )
    lines += [
        "",
        "| scenario | req/s | p50 ms | p99 ms | errors | CPU ms/req | ratio | target |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]

    def row(label: str, d: dict[str, Any] | None, ratio_text: str = "", target: str = "") -> None:
        if not d:
            return
        lines.append(
            f"| {label} | {_fmt(d.get('rps'))} | {_fmt(d.get('p50_ms'))} | "
            f"{_fmt(d.get('p99_ms'))} | {d.get('errors_total', '–')} | "
            f"{_fmt(d.get('cpu_ms_per_request'))} | {ratio_text} | {target} |"
        )

    one = s.get("1_process_distinct")
    if one:
        ok = (r["1_vs_pgbench"] or 0) >= TARGETS["process_vs_pgbench"] and not one["errors_total"]
        row(
            "1 POST /messages/process, own conversations",
            one,
            f"{_fmt(r['1_vs_pgbench'])} of pgbench, {_fmt(r['1_vs_health'])} of /health",
            f"≥ 0.5 of pgbench, 0 errors: {_met(ok)}",
        )
    two = s.get("2_process_one_conversation")
    if two:
        seq = two.get("seq_check", {})
        row(
            "2 … all on one conversation",
            two,
            f"{_fmt(r['2_vs_pgbench'])} of pgbench (one conversation)",
            f"seq gap-free: {_met(seq.get('gap_free'))} ({seq.get('messages')} messages)",
        )
    small, large = s.get("3_history_small"), s.get("3_history_large")
    if small and large:
        growth = r["3_history_p50_large_vs_small"]
        flat = growth is not None and growth <= TARGETS["history_p50_growth"]
        row("3 GET history?limit=50, 50 messages", small, "")
        row(
            "3 GET history?limit=50, 50 000 messages",
            large,
            f"p50 {_fmt(growth)}× the 50-message one",
            f"flat: {_met(flat)}",
        )
    row("6 ceiling: GET /health (same server)", c.get("health"))
    for key, label in (
        ("pgbench_distinct", "6 ceiling: pgbench, process SQL, own conversations"),
        ("pgbench_one_conversation", "6 ceiling: pgbench, process SQL, one conversation"),
    ):
        p = c.get(key)
        if p:
            lines.append(
                f"| {label} | {_fmt(p['tps'])} tps | | | {p['failed_total']} | | "
                f"avg latency {p['latency_avg_ms']} ms | |"
            )
    push = s.get("4_push_latency")
    if push:
        lines += [
            "",
            "| live push (scenario 4) | clients | messages | p50 ms | p99 ms | "
            "missing | target p99 < 50 ms |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for label, d in push.items():
            if "error" in d:
                lines.append(f"| {label} | – | – | – | – | – | error: {d['error'][:120]} |")
                continue
            after = d["after_response"]
            ok = (
                after["p99_ms"] is not None and after["p99_ms"] < 50 and not d["deliveries_missing"]
            )
            lines.append(
                f"| {label} | {d['clients']} | {d['messages']} | {after['p50_ms']} | "
                f"{after['p99_ms']} | {d['deliveries_missing']} | {_met(ok)} |"
            )
        lines.append("")
        lines.append(
            "Latency is measured from the moment the REST response arrived to the "
            "moment each client read the agent's reply (negative: the push arrived "
            "first — it is sent on commit, before the response is written)."
        )
    held = s.get("5_held_websockets")
    if held:
        ok = held["delivered_after_idle"] >= TARGETS["held_sockets"]
        lines += [
            "",
            f"Held websockets (scenario 5): {held['connected']}/{held['target']} "
            f"authenticated sockets on {held['ws_processes']} ASGI process(es); "
            f"{held['alive_after_idle']} alive after {held['idle_seconds']} s idle, "
            f"{held['delivered_after_idle']} received a message sent after the idle "
            f"period; RSS {held['rss_mib']['before']} → {held['rss_mib']['after_idle']}"
            f" MiB ({held['kib_per_connection']} KiB per connection). Target ≥ 1 000: "
            f"{_met(ok)}.",
        ]
    lines.append("")
    return "\n".join(lines)


def splice_readme(summary: str) -> bool:
    if not README.exists():
        return False
    text = README.read_text()
    if MARK_START not in text or MARK_END not in text:
        return False
    head, _, rest = text.partition(MARK_START)
    _, _, tail = rest.partition(MARK_END)
    README.write_text(f"{head}{MARK_START}\n{summary}\n{MARK_END}{tail}")
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 runs of 3 s, fewer push messages: a harness check (preliminary)",
    )
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=None)
    parser.add_argument("--topology", choices=["split", "asgi"], default="split")
    parser.add_argument("--wsgi-server", choices=["granian", "gunicorn"], default=None)
    parser.add_argument("--front", choices=["none", "nginx"], default="none")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", nargs="*", choices=["ceilings", "1", "2", "3", "4", "5"])
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON path (default bench/results/results.json or preliminary.json)",
    )
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        help="only rewrite summary.md / README from this results JSON",
    )
    return parser


def render(path: Path) -> int:
    """Rewrite the Markdown summary (and README section) from a results JSON."""
    results = json.loads(path.read_text())
    summary = markdown(results)
    summary_path = path.with_name(
        "preliminary.md"
        if path.stem == "preliminary"
        else "summary.md"
        if path.stem == "results"
        else f"{path.stem}.md"
    )
    summary_path.write_text(summary)
    print(summary)
    if path.stem == "results":
        splice_readme(summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render:
        return render(args.render)
    args.runs = args.runs or 3
    args.duration = args.duration or (3 if args.quick else 10)
    args.warmup = args.warmup or (1 if args.quick else 2)
    bench = Bench(args)
    results = bench.run()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = "preliminary" if args.quick else "results"
    output = args.output or RESULTS_DIR / f"{stem}.json"
    output.write_text(json.dumps(results, indent=2) + "\n")
    summary = markdown(results)
    summary_path = output.with_name("preliminary.md" if args.quick else "summary.md")
    if args.output:
        summary_path = output.with_suffix(".md")
    summary_path.write_text(summary)
    print(summary)
    if not args.quick and not args.no_readme and not args.output:
        bench.log(
            "README.md updated"
            if splice_readme(summary)
            else "README.md has no bench markers; summary in bench/results/summary.md"
        )
    bench.log(f"done in {results['elapsed_s']} s → {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
