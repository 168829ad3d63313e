"""How the serving topology was chosen: the same requests against each candidate.

    .venv/bin/python -m bench.topology [--duration 5] [--runs 3]

Candidates (all with one worker process per core, production settings, PostgreSQL + Redis):
  asgi            uvicorn (httptools, uvloop) running config.asgi for everything
  split-granian   granian WSGI for HTTP (+ uvicorn for websockets on a second port)
  split-gunicorn  gunicorn gthread for HTTP (+ uvicorn for websockets)
and, for the chosen WSGI server, 1/4/8 threads per worker. For each: GET /health, POST
/messages/process (64 connections, own conversations) and GET history?limit=50. Writes
bench/results/topology.json and topology.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bench import harness
from bench.run import RESULTS_DIR, Bench

CANDIDATES: list[tuple[str, dict[str, Any]]] = [
    ("asgi (uvicorn x2)", {"topology": "asgi", "wsgi_server": None, "threads": None}),
    (
        "split: granian WSGI x2, 4 threads",
        {"topology": "split", "wsgi_server": "granian", "threads": 4},
    ),
    (
        "split: granian WSGI x2, 1 thread",
        {"topology": "split", "wsgi_server": "granian", "threads": 1},
    ),
    (
        "split: granian WSGI x2, 8 threads",
        {"topology": "split", "wsgi_server": "granian", "threads": 8},
    ),
    (
        "split: gunicorn gthread x2, 4 threads",
        {"topology": "split", "wsgi_server": "gunicorn", "threads": 4},
    ),
    (
        "one port: nginx → granian WSGI x2 (4 threads) + uvicorn /ws/",
        {"topology": "split", "wsgi_server": "granian", "threads": 4, "front": "nginx"},
    ),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.topology")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="candidate numbers (0-based)")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    first: Bench | None = None
    for index, (label, options) in enumerate(CANDIDATES):
        if args.only and str(index) not in args.only:
            continue
        options = {"front": "none", **options}
        bench_args = argparse.Namespace(
            quick=True, runs=args.runs, duration=args.duration, warmup=1, **options
        )
        bench = Bench(bench_args)
        if first is None:
            bench.setup()
            first = bench
        else:  # same database and tokens for every candidate
            bench.seed, bench.customers_tsv, bench.history_tsv = (
                first.seed,
                first.customers_tsv,
                first.history_tsv,
            )
        bench.start_server()
        try:
            row = {
                "candidate": label,
                "server": bench.results["topology"],
                "health": bench.wrk_scenario(
                    f"{label}: /health", mode="get", url=f"{bench.http_url}/health"
                ),
                "process": bench.wrk_scenario(
                    f"{label}: process", mode="process", data=bench.customers_tsv
                ),
                "history": bench.wrk_scenario(
                    f"{label}: history",
                    mode="history",
                    data=bench.history_tsv,
                    extra=str(bench.seed["history"]["small"]),
                ),
                "load_average": harness.load_average(),
            }
        finally:
            assert bench.server is not None
            bench.server.stop()
        rows.append(row)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "topology.json"
    if args.only and path.exists():
        # A partial run replaces its candidates' rows and keeps the others.
        fresh = {row["candidate"] for row in rows}
        kept = [row for row in json.loads(path.read_text()) if row["candidate"] not in fresh]
        order = [label for label, _ in CANDIDATES]
        rows = sorted(
            kept + rows,
            key=lambda row: (
                order.index(row["candidate"]) if row["candidate"] in order else len(order)
            ),
        )
    path.write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| candidate | /health req/s | process req/s | process p99 ms | process CPU ms/req "
        "| history req/s | history CPU ms/req | load avg after |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        h, p, y = row["health"], row["process"], row["history"]
        lines.append(
            f"| {row['candidate']} | {h['rps']:.0f} | {p['rps']:.0f} | "
            f"{p['p99_ms']:.0f} | {p['cpu_ms_per_request']:.2f} | {y['rps']:.0f} | "
            f"{y['cpu_ms_per_request']:.2f} | {row['load_average']} |"
        )
    table = "\n".join(lines) + "\n"
    (RESULTS_DIR / "topology.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
