"""`make bench`: Parley's production profile against the peer, interleaved, in one run.

    .venv/bin/python -m bench.run [--scenarios process,history,...] [--rounds 5] [--seconds 10]
    BENCH_QUICK=1 .venv/bin/python -m bench.run      # = --quick: process,history, 2 x 5 s

It recreates its own databases (BENCH_DATABASE_URL, default .../parley_bench, and
BENCH_PEER_DATABASE_URL, default .../parley_peer -- never DATABASE_URL) and uses its own Redis
database and channel prefix (BENCH_REDIS_URL, default redis://127.0.0.1:6379/3). It seeds
customers and real access tokens through Django (bench/seed.py), copies the same ids into the
peer's database (bench/peer), starts `config.serving` (granian WSGI x cores, 4 threads, plus
uvicorn for websockets) with RATE_LIMIT_MESSAGES=1000000/m and AGENT_MAX_TURNS=10^9 (so the
per-user limit and the turn limit never change the measured path) and the peer (FastAPI, 2
uvicorn workers) on the same PostgreSQL, then measures, all with bench/lua/parley.lua and 64
connections:

  process      POST /messages/process, each request on its customer's own conversation  (A/B)
  process_one  the same, every request on one conversation (row-lock contention), then seq
               checked gap-free on both sides                                            (A/B)
  history      GET /conversations/{id}/history?limit=50 on 50 and on 50 000 messages     (A/B)
  push         live push latency, 200 websocket clients (Parley only)
  held         idle authenticated websockets held by one uvicorn process (Parley only)
  search       the search index's write cost (pgbench with / without it), then GET /search
               p50/p95/p99 at 10 000 → 1 000 000 messages (bench/operators.py)
  burst        1 000 hand-offs at once, ASSIGNMENT_MODE=auto, 20 operators online: time to
               assign all, nobody over capacity, none assigned twice (bench/operators.py)
  ceilings     GET /health on the same server; pgbench running the SQL of one process request

A/B scenarios run Parley and the peer in turns, `--rounds` rounds of `--seconds` each per side,
alternating which side goes first (A B, B A, A B, ...), so drift in the machine's load falls on
both. Each side of each round is a new server process tree (started, warmed up, measured,
stopped; --keep-servers: one tree per side for the run), so no one process's own speed weighs
on more than one round. Each side's figure is the median over its rounds; each ratio is the
median of the rounds' own ratios with its 95 % bootstrap interval (bench/stats.py); every
round is kept. Reported: req/s, p50/p99, errors (socket errors, timeouts, non-2xx/3xx),
server CPU ms per request (user+system of the server's processes from /proc), PostgreSQL CPU
ms per request, and the ratio Parley/peer. Writes bench/results/results.json and summary.md
(--quick: preliminary.*; --output: any path); a full run also puts those tables into
docs/benchmarks.md and a short summary of the ratios into README.md, each between
`<!-- bench:start -->` and `<!-- bench:end -->` (bench/readme.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import harness, operators, ws
from bench.drivers import median_pgbench, pgbench
from bench.peer.__main__ import asyncpg_url
from bench.readme import publish
from bench.render import interval_text, markdown, ratios
from bench.setup import (
    BASE_DIR,
    RESULTS_DIR,
    bench_env,
    flush_redis,
    machine,
    reset_database,
    run_json,
)
from bench.stats import paired_ratio
from config.serving import serve

CONNECTIONS = 64
CUSTOMERS = 256  # > CONNECTIONS: wrk threads take disjoint shares, rotating per request
PUSH_CLIENTS = 200
HELD_SOCKETS = 1000
PEER_WORKERS = 2
DEFAULT_PEER_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/parley_peer"


ALL_SCENARIOS = (
    "ceilings",
    "process",
    "process_one",
    "history",
    "push",
    "held",
    "search",
    "burst",
)
QUICK_SCENARIOS = ("process", "history")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env = bench_env(args)
        self.work = Path(tempfile.mkdtemp(prefix="parley-bench-"))
        self.results: dict[str, Any] = {"scenarios": {}, "ceilings": {}}
        self.server: harness.Server | None = None
        self.peer: harness.PeerServer | None = None
        self.baseline: harness.Server | None = None

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

    # setup
    def setup(self, *, peer: bool = False) -> None:
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
        if peer:
            self.log(f"peer database {peer_database_url().rsplit('/', 1)[1]}: same ids")
            run_json(
                [
                    sys.executable,
                    "-m",
                    "bench.peer",
                    "seed",
                    "--seed",
                    str(seed_file),
                    "--database-url",
                    peer_database_url(),
                ],
                self.env,
            )

    def server_args(self, http_port: int, ws_port: int) -> list[str]:
        """`config.serving`'s arguments for this run's Parley (topology, server, threads)."""
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
        if self.args.workers:
            server_args += ["--workers", str(self.args.workers)]
        return server_args + ["--front", getattr(self.args, "front", None) or "none"]

    def ws_port_for(self, http_port: int) -> int:
        split = self.args.topology == "split" and getattr(self.args, "front", "none") in (
            None,
            "none",
        )
        return harness.free_port() if split else http_port

    def new_server(self, log_path: Path) -> tuple[str, harness.Server]:
        """A Parley of this tree, started: its REST address and its process tree."""
        http_port = harness.free_port()
        ws_port = self.ws_port_for(http_port)
        server = harness.Server(self.server_args(http_port, ws_port), self.env, http_port, ws_port)
        server.start(log_path)
        return f"http://127.0.0.1:{http_port}", server

    def start_server(self) -> None:
        self.http_url, self.server = self.new_server(self.work / "server.log")
        self.ws_url = f"ws://127.0.0.1:{self.server.ws_port}"
        described = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from config.serving import serve; "
                "print(serve.plan(serve.build_parser().parse_args(sys.argv[1:])).description)",
                *self.server.args,
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=BASE_DIR,
        ).stdout.strip()
        self.results["topology"] = described
        self.log(f"serving: {described}")

    def new_baseline(self, log_path: Path) -> tuple[str, harness.Server]:
        """A Parley served from another checkout (same database, keys and settings), started.
        Its schema must match this tree's migrations."""
        port = harness.free_port()
        server = harness.Server(
            ["--port", str(port), "--ws-port", str(harness.free_port()), "--front", "none"],
            self.env,
            port,
            port,
            tree=self.args.baseline,
        )
        server.start(log_path)
        return f"http://127.0.0.1:{port}", server

    def describe_baseline(self, tree: Path) -> None:
        commit, _, date = (
            subprocess.run(
                ["git", "-C", str(tree), "log", "-1", "--format=%h %s%n%cs"],
                capture_output=True,
                text=True,
                check=False,
            )
            .stdout.strip()
            .partition("\n")
        )
        # The commit for whoever reproduces the run; the documents name the tree by its date.
        self.results["baseline"] = {"tree": str(tree), "commit": commit, "date": date or None}
        self.log(f"baseline: Parley from {tree} ({commit})")

    def new_peer(self, log_path: Path) -> tuple[str, harness.PeerServer]:
        """The peer, started on its own database with Parley's token settings."""
        port = harness.free_port()
        env = dict(
            self.env,
            PEER_DATABASE_URL=asyncpg_url(peer_database_url()),
            # The peer accepts Parley's own access tokens: same key, issuer and audience.
            PEER_JWT_SIGNING_KEY=self.env["JWT_SIGNING_KEY"],
            PEER_JWT_ISSUER=self.env.get("JWT_ISSUER", "parley"),
            PEER_JWT_AUDIENCE=self.env.get("JWT_AUDIENCE", "parley"),
        )
        peer = harness.PeerServer(env, port, workers=PEER_WORKERS)
        peer.start(log_path)
        return f"http://127.0.0.1:{port}", peer

    def launch(self, side: str, log_path: Path) -> tuple[str, harness.Supervised]:
        """A new server for one side of an A/B round."""
        if side == "parley":
            return self.new_server(log_path)
        if side == "baseline":
            return self.new_baseline(log_path)
        return self.new_peer(log_path)

    def start_other_sides(self) -> None:
        """The peer and the baseline for the whole run (--keep-servers)."""
        self.peer_url, self.peer = self.new_peer(self.work / "peer.log")
        if self.args.baseline:
            self.baseline_url, self.baseline = self.new_baseline(self.work / "baseline.log")

    # wrk scenarios
    @staticmethod
    def load(
        *, mode: str, data: Path | None, extra: str, connections: int
    ) -> Callable[..., harness.WrkResult]:
        """wrk with one scenario's script mode, data and connections: what stays the same
        between its warm-up and its measured rounds, on every side."""
        return functools.partial(
            harness.wrk, mode=mode, connections=connections, data_file=data, extra=extra
        )

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
        """Parley alone: warm-up, then `runs` wrk runs; the median of each figure."""
        assert self.server is not None
        url = url or self.http_url
        pids = self.server.pids
        load = self.load(mode=mode, data=data, extra=extra, connections=connections)
        load(url, duration=self.args.warmup)
        runs = [
            load(url, duration=self.args.duration, cpu_pids=pids) for _ in range(self.args.runs)
        ]
        summary = harness.median_run(runs)
        summary["connections"] = connections
        self.log(
            f"{name}: {summary['rps']:.0f} req/s, p50 {summary['p50_ms']} ms, "
            f"p99 {summary['p99_ms']} ms, errors {summary['errors_total']}, "
            f"{summary['cpu_ms_per_request']} CPU ms/req"
        )
        return summary

    @contextlib.contextmanager
    def round_server(
        self,
        side: str,
        kept: dict[str, tuple[str, harness.Supervised]],
        log_path: Path,
        load: Callable[..., harness.WrkResult],
    ) -> Iterator[tuple[str, harness.Supervised]]:
        """One side's server for one round: the kept one (--keep-servers), or a new one,
        warmed up with `load`, stopped when the round is done."""
        if side in kept:
            yield kept[side]
            return
        url, server = self.launch(side, log_path)
        try:
            load(url, duration=self.args.warmup)
            yield url, server
        finally:
            server.stop()

    def ab_sides(self) -> list[str]:
        return ["parley", "peer", *(["baseline"] if self.args.baseline else [])]

    def ab_scenario(self, name: str, *, mode: str, data: Path, extra: str = "-") -> dict[str, Any]:
        """Parley (A) and the peer (B), and the baseline when there is one, in turns: same wrk
        script, data and connections. Unless --keep-servers, every side of every round is a
        new process tree, started, warmed up, measured and stopped: a process's own speed
        (its hash seed, where its memory landed) then weighs on one round, not on the run."""
        names = self.ab_sides()
        load = self.load(mode=mode, data=data, extra=extra, connections=CONNECTIONS)
        kept: dict[str, tuple[str, harness.Supervised]] = {}
        if self.args.keep_servers:
            assert self.server is not None
            assert self.peer is not None
            kept = {
                "parley": (self.http_url, self.server),
                "peer": (self.peer_url, self.peer),
            }
            if self.baseline is not None:
                kept["baseline"] = (self.baseline_url, self.baseline)
            for url, _ in kept.values():
                load(url, duration=self.args.warmup)
        runs: dict[str, list[harness.WrkResult]] = {side: [] for side in names}
        order: list[str] = []
        for round_index in range(self.args.runs):
            # Rotate who goes first: A B (C), B (C) A, ... so drift falls on every side.
            shift = round_index % len(names)
            for side in names[shift:] + names[:shift]:
                slug = f"{mode}-{extra}-{round_index + 1}-{side}".replace("/", "_")
                with self.round_server(side, kept, self.work / f"{slug}.log", load) as (
                    url,
                    server,
                ):
                    result = load(
                        url,
                        duration=self.args.duration,
                        cpu_pids=server.pids,
                        db_pids=harness.postgres_pids(),
                    )
                runs[side].append(result)
                order.append(side)
                self.log(
                    f"  {name} round {round_index + 1} {side}: {result.rps:.0f} req/s, "
                    f"p99 {result.p99_ms:.0f} ms, errors {result.errors}, "
                    f"{result.cpu_ms_per_request or 0:.2f} CPU ms/req, machine "
                    f"{result.machine_cpu_ms_per_request or 0:.2f}"
                )
        out: dict[str, Any] = {side: harness.median_run(r) for side, r in runs.items()}
        out["order"] = order
        out["connections"] = CONNECTIONS
        out["new_servers_each_round"] = not self.args.keep_servers
        out["ratio"] = ab_ratio(runs["parley"], runs["peer"])
        if "baseline" in runs:
            out["ratio_baseline_vs_peer"] = ab_ratio(runs["baseline"], runs["peer"])
            out["ratio_vs_baseline"] = ab_ratio(runs["parley"], runs["baseline"])
        self.log(
            f"{name}: Parley {out['parley']['rps']:.0f} req/s vs peer "
            f"{out['peer']['rps']:.0f} req/s; Parley / peer {interval_text(out['ratio']['rps'])}"
            + (
                f"; Parley / baseline {interval_text(out['ratio_vs_baseline']['rps'])}"
                if "baseline" in runs
                else ""
            )
            + f"; CPU ms/req {out['parley']['cpu_ms_per_request']} vs "
            f"{out['peer']['cpu_ms_per_request']}"
        )
        return out

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        wanted = set(self.args.scenarios)
        ab = bool(wanted & {"process", "process_one", "history"})
        self.results["machine"] = machine(self.env)
        self.results["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.results["mode"] = "quick (preliminary)" if self.args.quick else "full"
        self.results["settings"] = {
            "scenarios": sorted(wanted),
            "rounds": self.args.runs,
            "runs": self.args.runs,
            "duration_s": self.args.duration,
            "warmup_s": self.args.warmup,
            "connections": CONNECTIONS,
            "new_servers_each_round": not self.args.keep_servers,
            "RATE_LIMIT_MESSAGES": self.env["RATE_LIMIT_MESSAGES"],
            "AGENT_MAX_TURNS": self.env["AGENT_MAX_TURNS"],
            "WSGI_APP": self.env.get("WSGI_APP", "config.wsgi:application"),
        }
        self.setup(peer=ab)
        self.start_server()
        s, c = self.results["scenarios"], self.results["ceilings"]
        try:
            if ab:
                self.results["peer"] = (
                    f"FastAPI + SQLAlchemy async + asyncpg + PyJWT, uvicorn x{PEER_WORKERS}"
                )
                if self.args.baseline:
                    self.describe_baseline(self.args.baseline)
                if self.args.keep_servers:
                    self.start_other_sides()
            if "ceilings" in wanted:
                c["health"] = self.wrk_scenario(
                    "ceiling GET /health", mode="get", url=f"{self.http_url}/health"
                )
            if "process" in wanted:
                s["1_process_distinct"] = self.ab_scenario(
                    "1 process, own conversations", mode="process", data=self.customers_tsv
                )
            if "process_one" in wanted:
                one = self.ab_scenario(
                    "2 process, one conversation", mode="process_one", data=self.customers_tsv
                )
                conversation = str(self.seed["customers"][0]["conversation_id"])
                one["parley"]["seq_check"] = run_json(
                    [
                        sys.executable,
                        "-m",
                        "bench.seed",
                        "check-seq",
                        "--conversation",
                        conversation,
                    ],
                    self.env,
                )
                one["peer"]["seq_check"] = run_json(
                    [
                        sys.executable,
                        "-m",
                        "bench.peer",
                        "check-seq",
                        "--conversation",
                        conversation,
                        "--database-url",
                        peer_database_url(),
                    ],
                    self.env,
                )
                s["2_process_one_conversation"] = one
            if "history" in wanted:
                for label in ("small", "large"):
                    s[f"3_history_{label}"] = self.ab_scenario(
                        f"3 history limit=50, {label}",
                        mode="history",
                        data=self.history_tsv,
                        extra=str(self.seed["history"][label]),
                    )
                    s[f"3_history_{label}"]["conversation_messages"] = (
                        50 if label == "small" else 50_000
                    )
            # The rest is Parley (or PostgreSQL) alone: stop the other sides, whose pools would
            # otherwise hold connections pgbench's 64 clients need (max_connections is 100).
            self.stop_other_sides()
            if "ceilings" in wanted:
                c["pgbench_distinct"] = self.pgbench("pgbench_process.sql")
                c["pgbench_one_conversation"] = self.pgbench("pgbench_process_one.sql")
            if "push" in wanted:
                s["4_push_latency"] = self.push()
            if "held" in wanted:
                s["5_held_websockets"] = self.held()
            # Last: they add a million messages and a thousand escalations to the database.
            if "search" in wanted:
                s["7_search"] = operators.search(self)
            if "burst" in wanted:
                s["8_burst"] = operators.burst(self)
        finally:
            self.stop_other_sides()
            assert self.server is not None
            self.results["server_exit_code"] = self.server.stop()
        self.results["load_average_at_end"] = harness.load_average()
        self.results["elapsed_s"] = round(time.monotonic() - started, 1)
        self.results["ratios"] = ratios(self.results)
        return self.results

    def stop_other_sides(self) -> None:
        if self.peer is not None:
            self.results["peer_exit_code"] = self.peer.stop()
            self.peer = None
        if self.baseline is not None:
            self.results["baseline_exit_code"] = self.baseline.stop()
            self.baseline = None

    def pgbench(self, script: str) -> dict[str, Any]:
        load = functools.partial(
            pgbench, self.work / "sql" / script, url=self.env["DATABASE_URL"], clients=CONNECTIONS
        )
        load(duration=self.args.warmup)
        runs = [load(duration=self.args.duration) for _ in range(self.args.runs)]
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


RATIO_FIGURES = (
    "rps",
    "p50_ms",
    "p99_ms",
    "cpu_ms_per_request",
    "db_cpu_ms_per_request",
    "machine_cpu_ms_per_request",
)


def ab_ratio(
    a: list[harness.WrkResult], b: list[harness.WrkResult]
) -> dict[str, dict[str, Any] | None]:
    """A / B for each figure (req/s: higher is better; the others: lower is better), round by
    round: the median of the rounds' ratios with its interval (bench/stats.py)."""
    return {
        key: paired_ratio([getattr(r, key) for r in a], [getattr(r, key) for r in b])
        for key in RATIO_FIGURES
    }


def peer_database_url() -> str:
    return os.environ.get("BENCH_PEER_DATABASE_URL", DEFAULT_PEER_DATABASE_URL)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
        help="process and history only, 2 rounds of 5 s: for iteration (preliminary; also "
        "BENCH_QUICK=1)",
    )
    parser.add_argument(
        "--scenarios",
        type=lambda text: [part.strip() for part in text.split(",") if part.strip()],
        default=None,
        help=f"comma-separated, from {','.join(ALL_SCENARIOS)} (default: all; --quick: "
        f"{','.join(QUICK_SCENARIOS)})",
    )
    parser.add_argument(
        "--rounds", "--runs", dest="runs", type=int, default=None, help="rounds (default 5)"
    )
    parser.add_argument(
        "--seconds",
        "--duration",
        dest="duration",
        type=float,
        default=None,
        help="seconds per wrk run (default 10)",
    )
    parser.add_argument("--warmup", type=float, default=None)
    parser.add_argument(
        "--search-sizes",
        type=lambda text: [int(part) for part in text.split(",") if part.strip()],
        default=None,
        help="message counts the search scenario measures at (default 10000,100000,1000000)",
    )
    parser.add_argument("--topology", choices=["split", "asgi"], default="split")
    parser.add_argument("--wsgi-server", choices=["granian", "gunicorn"], default=None)
    parser.add_argument("--front", choices=["none", "nginx"], default="none")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None, help="WSGI worker processes")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON path (default bench/results/results.json or preliminary.json)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout of Parley (e.g. `git worktree add /tmp/main main`) served as a "
        "third side of every A/B scenario: before/after and the peer in one run",
    )
    parser.add_argument(
        "--keep-servers",
        action="store_true",
        help="serve each side of the A/B scenarios from one process tree for the whole run "
        "instead of new processes every round: quicker, but one process's own speed then "
        "weighs on every round",
    )
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        help="only rewrite summary.md (and README / docs/benchmarks.md) from this results JSON",
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
        publish(results)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render:
        return render(args.render)
    args.scenarios = args.scenarios or list(QUICK_SCENARIOS if args.quick else ALL_SCENARIOS)
    unknown = set(args.scenarios) - set(ALL_SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; choose from {ALL_SCENARIOS}")
    args.runs = args.runs or (2 if args.quick else 5)
    args.duration = args.duration or (5 if args.quick else 10)
    args.warmup = args.warmup or 2
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
            "README.md and docs/benchmarks.md updated"
            if publish(results)
            else "README.md or docs/benchmarks.md has no bench markers; tables in "
            "bench/results/summary.md"
        )
    bench.log(f"done in {results['elapsed_s']} s → {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
