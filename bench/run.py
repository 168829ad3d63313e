"""`make bench`: Parley's benchmarks against the production profile.

    .venv/bin/python -m bench.run [--quick] [--runs 3] [--duration 10] [--topology split]

It recreates its own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/parley_bench -- never DATABASE_URL) and uses its own Redis
database and channel prefix (BENCH_REDIS_URL, default redis://127.0.0.1:6379/3), seeds its own
customers and tokens through Django (bench/seed.py), starts `config.serving` with
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
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import harness, ws
from bench.drivers import median_pgbench, pgbench
from bench.readme import splice_readme
from bench.render import markdown, ratios
from bench.setup import (
    BASE_DIR,
    RESULTS_DIR,
    bench_env,
    flush_redis,
    machine,
    reset_database,
    run_json,
)
from config.serving import serve

CONNECTIONS = 64
CUSTOMERS = 256  # > CONNECTIONS: wrk threads take disjoint shares, rotating per request
PUSH_CLIENTS = 200
HELD_SOCKETS = 1000


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
                "import sys; from config.serving import serve; "
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
