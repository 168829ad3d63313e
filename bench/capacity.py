"""`make capacity`: the figures a deployment is sized from, measured on this machine.

    .venv/bin/python -m bench.capacity [--quick] [--rounds 3] [--seconds 10] [--sockets 10000]

The production profile (config.serving: granian WSGI, one worker per core, 4 threads; uvicorn
x4 for websockets; no webhook worker until the queue phase starts its own) runs on a PostgreSQL
cluster and a redis-server of the benchmark's own (tests/faults/services.py; durability on, as
in production, plus pg_stat_statements). The machine is shared with other work, so every figure
rests on CPU time rather than wall-clock throughput: each process's user+system CPU from /proc,
divided by what it served. Because the database and Redis are the run's own, their CPU, their
statements and their WAL belong to what is measured and nothing else.

  process   POST /messages/process, 64 connections, each request on its customer's own
            conversation: CPU ms per message of the web tier, PostgreSQL and Redis; statements,
            rows, transactions and WAL bytes per message; Redis commands per message
  history   GET /conversations/{id}/history?limit=50: the same per read
  sockets   --sockets idle authenticated websockets across the uvicorn processes (SO_REUSEPORT),
            idle for a while, then one message per conversation must reach every socket: RSS,
            socket count and CPU of each process before / connected / after the idle time
  queue     the webhook queue (django-tasks' database backend): an endpoint on a loopback
            receiver answering 200 at once; the process route fills the outbox with no worker
            running, then 1 or 2 `manage.py run_worker` processes drain it: deliveries per
            second (claimed, sent, recorded) and CPU per delivery, against the event rate the
            process route produces (two events per message per endpoint)

Every phase runs --rounds rounds; the JSON keeps each round and the median and spread (min, max)
of each figure, plus the machine and its load average. Writes bench/results/capacity.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import harness, ws
from bench.run import Bench
from bench.setup import BASE_DIR, RESULTS_DIR, machine, run_json
from config.serving import serve

CONNECTIONS = 64
PROBE = "/* capacity-probe */"
# Each round's statistics are read after the backends flushed theirs: PostgreSQL 15 backends
# report their counters at most once a second, and when they go idle.
STATS_FLUSH_SECONDS = 1.2


# --- what the run's own PostgreSQL and Redis did ---------------------------------------------


class Meter:
    """CPU of each tier and the counters of the run's PostgreSQL and Redis, read as snapshots;
    `delta` turns two of them into figures per unit of work."""

    def __init__(self, *, database_url: str, pg: Any, redis_server: Any) -> None:
        import psycopg
        import redis

        self.db = psycopg.connect(
            database_url.replace("postgres://", "postgresql://"), autocommit=True
        )
        self.db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.pg = pg
        self.redis_pid = redis_server.process.pid
        self.redis = redis.Redis.from_url(redis_server.url(0))
        self.groups: dict[str, Callable[[], list[int]]] = {
            "postgresql": lambda: harness.descendants(self.pg.pid()),
            "redis": lambda: [self.redis_pid],
        }

    def add_group(self, name: str, pids: Callable[[], list[int]]) -> None:
        self.groups[name] = pids

    def cpu(self) -> dict[str, dict[int, float]]:
        return {name: harness.cpu_by_pid(pids()) for name, pids in self.groups.items()}

    def counters(self) -> dict[str, float]:
        row = self.db.execute(
            f"""{PROBE}
            SELECT
              (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s
                WHERE s.dbid = d.oid AND s.query NOT LIKE '{PROBE}%'),
              (SELECT coalesce(sum(rows), 0) FROM pg_stat_statements s
                WHERE s.dbid = d.oid AND s.query NOT LIKE '{PROBE}%'),
              (SELECT coalesce(sum(wal_bytes), 0) FROM pg_stat_statements s
                WHERE s.dbid = d.oid AND s.query NOT LIKE '{PROBE}%'),
              pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0'),
              ds.xact_commit, ds.tup_inserted, ds.tup_updated, ds.tup_deleted, ds.tup_fetched,
              (SELECT coalesce(max(id), 0) FROM messaging_message)
            FROM pg_database d JOIN pg_stat_database ds ON ds.datid = d.oid
            WHERE d.datname = current_database()"""  # noqa: S608 - a constant of ours
        ).fetchone()
        assert row is not None
        names = (
            "statements",
            "statement_rows",
            "statement_wal_bytes",
            "wal_bytes",
            "transactions",
            "rows_inserted",
            "rows_updated",
            "rows_deleted",
            "rows_fetched",
            "messages_written",
        )
        found = {name: float(value) for name, value in zip(names, row, strict=True)}
        found["redis_commands"] = float(self.redis.info("stats")["total_commands_processed"])
        return found

    def statements(self) -> dict[str, tuple[float, float, float, str]]:
        """pg_stat_statements of the benchmark's database, by query id: calls, rows, WAL bytes,
        the query's text."""
        rows = self.db.execute(
            f"""{PROBE} SELECT s.queryid::text, s.calls, s.rows, s.wal_bytes, s.query
            FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
            WHERE d.datname = current_database() AND s.query NOT LIKE '{PROBE}%'"""  # noqa: S608
        ).fetchall()
        return {r[0]: (float(r[1]), float(r[2]), float(r[3]), r[4]) for r in rows}

    def outbox_events(self) -> int:
        row = self.db.execute(
            f"{PROBE} SELECT count(*) FROM integrations_webhookevent"  # noqa: S608 - constants
        ).fetchone()
        return int(row[0]) if row else 0

    def outbox_trim(self, keep: int) -> int:
        """Keep the oldest `keep` events of the outbox (the fill wrote more than the round
        needs), so that a round delivers all it holds: the sweep's share of the cost is then
        counted in full. Returns how many are left."""
        self.db.execute(
            f"""{PROBE} DELETE FROM integrations_webhookevent WHERE id NOT IN
            (SELECT id FROM integrations_webhookevent ORDER BY id LIMIT %s)""",  # noqa: S608
            [keep],
        )
        return self.outbox_events()

    def queue_empty(self) -> None:
        """The webhook queue as a fresh deployment has it (between the queue's rounds, with no
        worker running): no events, deliveries or tasks."""
        for table in (
            "integrations_webhookdelivery",
            "integrations_webhookevent",
            "django_tasks_database_dbtaskresult",
        ):
            self.db.execute(f"{PROBE} DELETE FROM {table}")  # noqa: S608 - our table names
        self.db.execute(f"{PROBE} VACUUM ANALYZE integrations_webhookdelivery")

    @staticmethod
    def statements_per_unit(
        before: dict[str, tuple[float, float, float, str]],
        after: dict[str, tuple[float, float, float, str]],
        units: float,
        top: int = 12,
    ) -> list[dict[str, Any]]:
        """The statements run per unit of work, most frequent first."""
        found: list[dict[str, Any]] = []
        for key, (calls, rows, wal, query) in after.items():
            b = before.get(key, (0.0, 0.0, 0.0, ""))
            if calls - b[0] > 0:
                found.append(
                    {
                        "per_unit": round((calls - b[0]) / units, 3),
                        "rows_per_unit": round((rows - b[1]) / units, 2),
                        "wal_bytes_per_unit": round((wal - b[2]) / units, 1),
                        "query": " ".join(query.split())[:240],
                    }
                )
        return sorted(found, key=lambda f: float(f["per_unit"]), reverse=True)[:top]

    @staticmethod
    def per_unit(
        cpu_before: dict[str, dict[int, float]],
        cpu_after: dict[str, dict[int, float]],
        counters_before: dict[str, float],
        counters_after: dict[str, float],
        units: float,
    ) -> dict[str, float | None]:
        if not units:
            return {}
        out: dict[str, float | None] = {}
        for group in cpu_after:
            out[f"{group}_cpu_ms"] = round(
                1000 * harness.cpu_delta(cpu_before[group], cpu_after[group]) / units, 3
            )
        for name in counters_after:
            out[name] = round((counters_after[name] - counters_before[name]) / units, 2)
        return out

    def close(self) -> None:
        self.db.close()
        self.redis.close()


def spread(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and (min, max) of every numeric figure over the rounds."""
    keys = [k for k, v in rounds[0].items() if isinstance(v, int | float)]
    summary: dict[str, Any] = {"rounds": len(rounds)}
    for key in keys:
        values = [r[key] for r in rounds if isinstance(r.get(key), int | float)]
        if values:
            summary[key] = round(statistics.median(values), 3)
            summary[f"{key}_range"] = [round(min(values), 3), round(max(values), 3)]
    return summary


# --- the run ------------------------------------------------------------------------------------


class Capacity:
    def __init__(self, args: argparse.Namespace, pg: Any, redis_server: Any) -> None:
        self.args = args
        self.pg = pg
        self.redis_server = redis_server
        bench_args = argparse.Namespace(
            quick=args.quick,
            runs=args.rounds,
            duration=args.seconds,
            warmup=2,
            topology="split",
            wsgi_server=None,
            threads=None,
            workers=None,
            front="none",
        )
        self.bench = Bench(bench_args)
        # The run's own PostgreSQL and Redis (Bench.setup recreates parley_bench there).
        self.bench.env.update(
            DATABASE_URL=pg.url("parley_bench"),
            REDIS_URL=redis_server.url(0),
            # The queue phase's receiver listens on 127.0.0.1.
            WEBHOOK_ALLOW_PRIVATE_HOSTS="1",
            # 4 uvicorn processes x the pool's 20 connections, the WSGI threads, the workers.
            DB_POOL_MAX_SIZE="20",
        )
        self.env = self.bench.env
        self.results: dict[str, Any] = {}
        self.log = self.bench.log

    # the server
    def start_server(self) -> None:
        http_port, ws_port = harness.free_port(), harness.free_port()
        args = [
            "--port",
            str(http_port),
            "--ws-port",
            str(ws_port),
            "--front",
            "none",
            "--ws-workers",
            str(self.args.ws_workers),
            "--webhook-workers",
            "0",
        ]
        self.server = harness.Server(args, self.env, http_port, ws_port)
        self.server.start(self.bench.work / "server.log")
        self.http_url = f"http://127.0.0.1:{http_port}"
        self.ws_url = f"ws://127.0.0.1:{ws_port}"
        self.http_port = http_port
        self.results["serving"] = serve.plan(serve.build_parser().parse_args(args)).description
        self.log(f"serving: {self.results['serving']}")

    # one measured wrk run
    def measured(
        self, *, mode: str, data: Path, extra: str = "-", seconds: float
    ) -> tuple[harness.WrkResult, dict[str, Any]]:
        """One wrk run; figures per unit of work. The unit of the process route is a turn (a
        customer message and the agent's reply) counted in the database, so requests still in
        flight when wrk stops are counted too; a history read is one answered request."""
        cpu_before = self.meter.cpu()
        counters_before = self.meter.counters()
        statements_before = self.meter.statements()
        result = harness.wrk(
            self.http_url,
            mode=mode,
            connections=CONNECTIONS,
            duration=seconds,
            data_file=data,
            extra=extra,
        )
        cpu_after = self.meter.cpu()
        time.sleep(STATS_FLUSH_SECONDS)
        counters_after = self.meter.counters()
        statements_after = self.meter.statements()
        units: float = result.requests - result.errors
        if mode == "process":
            units = (counters_after["messages_written"] - counters_before["messages_written"]) / 2
        figures: dict[str, Any] = Meter.per_unit(
            cpu_before, cpu_after, counters_before, counters_after, units
        )
        figures.update(
            units=units,
            rps=round(result.rps, 1),
            requests=result.requests,
            errors=result.errors,
            p50_ms=result.p50_ms,
            p99_ms=result.p99_ms,
            machine_cpu_ms=round(
                (result.machine_cpu_ms_per_request or 0) * result.requests / units, 3
            ),
        )
        figures["tier_cpu_ms"] = round(
            sum(figures[f"{g}_cpu_ms"] or 0 for g in ("web", "postgresql", "redis")), 3
        )
        figures["load_average"] = harness.load_average()[0]
        figures["statements_by_query"] = Meter.statements_per_unit(
            statements_before, statements_after, units
        )
        return result, figures

    def rounds(self, name: str, **wrk: Any) -> dict[str, Any]:
        harness.wrk(
            self.http_url,
            mode=wrk["mode"],
            connections=CONNECTIONS,
            duration=2,
            data_file=wrk["data"],
            extra=wrk.get("extra", "-"),
        )
        each = []
        for index in range(self.args.rounds):
            _, figures = self.measured(seconds=self.args.seconds, **wrk)
            each.append(figures)
            self.log(
                f"{name} round {index + 1}: {figures['rps']} req/s, web "
                f"{figures['web_cpu_ms']} + pg {figures['postgresql_cpu_ms']} + redis "
                f"{figures['redis_cpu_ms']} CPU ms/unit, {figures['statements']} statements, "
                f"{figures['wal_bytes']} WAL bytes, load {figures['load_average']}"
            )
        return {"median": spread(each), "each": each}

    # websockets
    def sockets(self) -> dict[str, Any]:
        asgi = self.server.asgi_pids()
        snapshots: list[dict[str, Any]] = []

        def snapshot() -> float:
            per_process = {}
            for pid in asgi:
                try:
                    fds = os.listdir(f"/proc/{pid}/fd")
                    sockets = sum(
                        1 for fd in fds if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
                    )
                except OSError:
                    sockets = 0
                per_process[str(pid)] = {
                    "rss_mib": round(harness.rss_mib(pid), 1),
                    "socket_fds": sockets,
                    "cpu_s": round(harness.cpu_seconds([pid]), 2),
                }
            info = self.meter.redis.info()
            snapshots.append(
                {
                    "at": round(time.monotonic(), 2),
                    "processes": per_process,
                    "redis_clients": info["connected_clients"],
                    "redis_used_memory_mib": round(info["used_memory"] / 2**20, 1),
                    "postgresql_cpu_s": round(
                        harness.cpu_seconds(harness.descendants(self.pg.pid())), 2
                    ),
                }
            )
            return sum(p["rss_mib"] for p in per_process.values())

        seed = self.bench.seed
        result = asyncio.run(
            ws.held_connections(
                http_url=self.http_url,
                ws_url=self.ws_url,
                customers=seed["customers"],
                message=seed["message"],
                count=self.args.sockets,
                conversations=self.args.socket_conversations,
                idle_seconds=self.args.idle_seconds,
                rss=snapshot,
            )
        )
        labels = ("before", "connected", "after_idle")
        result["snapshots"] = dict(zip(labels, snapshots, strict=False))
        before, connected, idle = snapshots[0], snapshots[1], snapshots[2]
        per_process = {}
        for pid in before["processes"]:
            b, c, i = (s["processes"][pid] for s in (before, connected, idle))
            held = i["socket_fds"] - b["socket_fds"]
            per_process[pid] = {
                "sockets": held,
                "rss_before_mib": b["rss_mib"],
                "rss_after_idle_mib": i["rss_mib"],
                "kib_per_socket": round(1024 * (i["rss_mib"] - b["rss_mib"]) / held, 1)
                if held
                else None,
                "cpu_ms_per_connect": round(1000 * (c["cpu_s"] - b["cpu_s"]) / held, 2)
                if held
                else None,
            }
        sockets = sum(p["sockets"] for p in per_process.values())
        idle_cpu = sum(
            idle["processes"][p]["cpu_s"] - connected["processes"][p]["cpu_s"]
            for p in before["processes"]
        )
        idle_for = idle["at"] - connected["at"]
        result["per_process"] = per_process
        result["sockets_counted"] = sockets
        result["cpu_ms_per_socket_second_idle"] = (
            round(1000 * idle_cpu / sockets / idle_for, 4) if sockets and idle_for else None
        )
        result["cpu_ms_per_connect_less_renewals"] = connect_cpu_less_renewals(result)
        result["postgresql_cpu_ms_per_connect"] = (
            round(1000 * (connected["postgresql_cpu_s"] - before["postgresql_cpu_s"]) / sockets, 2)
            if sockets
            else None
        )
        return result

    # the webhook queue
    def queue(self) -> dict[str, Any]:
        from tests.receiver import receiver_running

        out: dict[str, Any] = {}
        with receiver_running() as receiver:
            out["endpoint"] = run_json(
                [sys.executable, "-m", "bench.capacity", "endpoint", "--url", receiver.url()],
                self.env,
            )
            # Each queue (WEBHOOK_QUEUE) with 1 and 2 workers, interleaved round by round so
            # that a shared machine's load falls on all of them alike.
            queues: list[str] = self.args.queues
            by_workers: dict[tuple[str, int], list[dict[str, Any]]] = {
                (queue, workers): [] for queue in queues for workers in (1, 2)
            }
            fills: list[dict[str, Any]] = []
            for index in range(self.args.rounds):
                order = list(by_workers) if index % 2 == 0 else list(reversed(by_workers))
                for queue, workers in order:
                    events0 = self.meter.outbox_events()
                    _, fill = self.measured(
                        mode="process", data=self.bench.customers_tsv, seconds=self.args.fill
                    )
                    fills.append(fill)
                    written = self.meter.outbox_events() - events0
                    events = self.meter.outbox_trim(self.args.queue_events) - events0
                    drained = self.drain(workers, events=events, receiver=receiver, queue=queue)
                    drained.update(
                        events=events,
                        events_per_turn=round(written / fill["units"], 3),
                        load_average=harness.load_average()[0],
                    )
                    by_workers[(queue, workers)].append(drained)
                    self.log(
                        f"queue round {index + 1}, {queue}, {workers} worker(s): {events} events, "
                        f"{drained['deliveries_per_second']} deliveries/s, worker "
                        f"{drained['worker_cpu_ms']} + pg {drained['postgresql_cpu_ms']} CPU "
                        f"ms/delivery, {drained['statements']} statements, "
                        f"load {drained['load_average']}"
                    )
            ids = [r.headers.get("webhook-id") for r in receiver.requests]
            out["received_total"] = len(ids)
            out["received_duplicates"] = len(ids) - len(set(ids))
        out["process_with_endpoint"] = {"median": spread(fills), "each": fills}
        for (queue, workers), rounds in by_workers.items():
            # The first queue named (the one production uses) keeps the plain key.
            key = f"workers_{workers}" if queue == queues[0] else f"{queue}_workers_{workers}"
            out[key] = {"median": spread(rounds), "each": rounds, "queue": queue}
        return out

    def drain(
        self, workers: int, *, events: int, receiver: Any, queue: str = "celery"
    ) -> dict[str, Any]:
        """Start `workers` run_worker processes on the filled outbox and time them until every
        event is delivered (progress read at the receiver, so the measurement adds no query).
        The rate runs from the first delivery on, so the workers' start-up (Django's import) is
        not in it; the sweep that turns the events into deliveries and tasks is. Then the
        workers stop and the queue is emptied for the next round."""
        log = (self.bench.work / "workers.log").open("ab")
        processes = [
            subprocess.Popen(
                command,
                env={**self.env, "WEBHOOK_QUEUE": queue},
                cwd=BASE_DIR,
                stdout=log,
                stderr=log,
            )
            for command in serve.worker_commands(workers)
        ]
        self.meter.add_group(
            "worker", lambda: [p for proc in processes for p in harness.descendants(proc.pid)]
        )
        received0 = len(receiver.requests)
        samples: list[tuple[float, int]] = []
        first = None
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                now, done = time.monotonic(), len(receiver.requests) - received0
                samples.append((now, done))
                if first is None and done > 0:
                    meter = self.meter
                    first = (now, done, meter.cpu(), meter.counters(), meter.statements())
                if done >= events:
                    break
                time.sleep(0.1)
            last = (time.monotonic(), len(receiver.requests) - received0, self.meter.cpu())
        finally:
            for proc in processes:
                proc.send_signal(signal.SIGTERM)
            for proc in processes:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            log.close()
        if first is None:
            raise RuntimeError(f"no delivery within five minutes (see {log.name})")
        time.sleep(STATS_FLUSH_SECONDS)
        counters_last, statements_last = self.meter.counters(), self.meter.statements()
        del self.meter.groups["worker"]
        units = last[1] - first[1]
        seconds = last[0] - first[0]
        figures: dict[str, Any] = Meter.per_unit(first[2], last[2], first[3], counters_last, units)
        figures.update(
            workers=workers,
            delivered=last[1],
            drained_all=last[1] >= events,
            seconds=round(seconds, 2),
            deliveries_per_second=round(units / seconds, 1) if seconds else None,
        )
        figures["queue_cpu_ms"] = round(
            (figures.get("worker_cpu_ms") or 0) + (figures.get("postgresql_cpu_ms") or 0), 3
        )
        figures["statements_by_query"] = Meter.statements_per_unit(first[4], statements_last, units)
        self.meter.queue_empty()
        return figures

    # everything
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.results["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.results["machine"] = machine(self.env)
        self.results["settings"] = {
            k: v for k, v in vars(self.args).items() if k != "command" and not callable(v)
        }
        self.results["services"] = {
            "postgresql": "a cluster of the run's own (initdb), fsync/synchronous_commit/"
            "full_page_writes on, shared_buffers default, pg_stat_statements",
            "redis": "a redis-server of the run's own, no persistence",
        }
        self.log(f"load average {harness.load_average()}; database, migrate, seed")
        self.bench.setup()
        self.start_server()
        try:
            self.meter = Meter(
                database_url=self.env["DATABASE_URL"], pg=self.pg, redis_server=self.redis_server
            )
            self.meter.add_group("web", lambda: self.server.worker_pids(self.http_port))
            self.meter.add_group("websocket", self.server.asgi_pids)
            phases = set(self.args.phases)
            if "process" in phases:
                self.results["process"] = self.rounds(
                    "process", mode="process", data=self.bench.customers_tsv
                )
            if "history" in phases:
                self.results["history"] = self.rounds(
                    "history",
                    mode="history",
                    data=self.bench.history_tsv,
                    extra=str(self.bench.seed["history"]["small"]),
                )
            if "sockets" in phases:
                self.results["sockets"] = self.sockets()
                shown = {k: v for k, v in self.results["sockets"].items() if k != "snapshots"}
                self.log(f"sockets: {json.dumps(shown)}")
            if "queue" in phases:
                self.results["queue"] = self.queue()
        finally:
            self.results["server_exit_code"] = self.server.stop()
            if hasattr(self, "meter"):
                self.meter.close()
        self.results["model"] = model(self.results)
        self.results["load_average_at_end"] = harness.load_average()
        self.results["elapsed_s"] = round(time.monotonic() - started, 1)
        return self.results


def connect_cpu_less_renewals(result: dict[str, Any]) -> float | None:
    """The websocket tier's CPU per connect without the lease renewals (accounts.socket_slots)
    of the sockets already open meanwhile: while 10 000 sockets connect over minutes, those
    renewals are a large share of what the tier spends. Sockets open at a steady pace, so on
    average half of them are open during the connect time."""
    sockets, idle_rate = result["sockets_counted"], result["cpu_ms_per_socket_second_idle"]
    if not sockets or idle_rate is None:
        return None
    before, connected = result["snapshots"]["before"], result["snapshots"]["connected"]
    spent_ms = 1000 * sum(
        connected["processes"][pid]["cpu_s"] - before["processes"][pid]["cpu_s"]
        for pid in before["processes"]
    )
    renewals_ms = idle_rate * sockets * result["connect_seconds"] / 2
    return round((spent_ms - renewals_ms) / sockets, 2)


def model(results: dict[str, Any]) -> dict[str, Any]:
    """The figures sizing rests on, from the medians (see docs/operations.md, "Sizing")."""
    out: dict[str, Any] = {}
    cores = results["machine"]["nproc"]
    for route in ("process", "history"):
        if route in results:
            m = results[route]["median"]
            out[route] = {
                "web_cpu_ms": m["web_cpu_ms"],
                "postgresql_cpu_ms": m["postgresql_cpu_ms"],
                "redis_cpu_ms": m["redis_cpu_ms"],
                "per_core_per_second": {
                    "web": round(1000 / m["web_cpu_ms"], 1),
                    "postgresql": round(1000 / m["postgresql_cpu_ms"], 1),
                    "all_tiers_on_one_core": round(1000 / m["tier_cpu_ms"], 1),
                },
                "measured_rps_on_this_machine": m["rps"],
                "cores": cores,
            }
    if "queue" in results and "process" in results:
        peak_messages = results["process"]["median"]["rps"]
        events_per_message = results["queue"]["workers_1"]["median"]["events_per_turn"]
        peak_events = peak_messages * events_per_message
        rates = {
            w: results["queue"][f"workers_{w}"]["median"]["deliveries_per_second"] for w in (1, 2)
        }
        out["queue"] = {
            "peak_messages_per_second": peak_messages,
            "events_per_message_per_endpoint": events_per_message,
            "peak_events_per_second_one_endpoint": round(peak_events, 1),
            "deliveries_per_second": rates,
            "headroom": {w: round(r / peak_events, 2) for w, r in rates.items()},
            "keeps_up_2x_with_2_workers": rates[2] >= 2 * peak_events,
            "queue_cpu_ms_per_delivery": results["queue"]["workers_1"]["median"]["queue_cpu_ms"],
        }
    return out


# --- helpers run inside Django ------------------------------------------------------------------


def endpoint_create(url: str) -> dict[str, Any]:
    import django

    django.setup()
    from integrations.services import webhook_endpoint_create
    from messaging.events import EVENT_TYPES

    endpoint, _secret = webhook_endpoint_create(
        actor=None, url=url, events=list(EVENT_TYPES), description="capacity benchmark"
    )
    return {"id": endpoint.pk, "url": url, "events": endpoint.events}


@contextlib.contextmanager
def own_services() -> Iterator[tuple[Any, Any]]:
    from deploy.services import postgres_server, redis_server

    settings = {
        # Production durability (the fault tests' servers turn it off for speed).
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "shared_preload_libraries": "pg_stat_statements",
        "max_connections": "300",
    }
    with postgres_server(settings=settings) as pg, redis_server() as redis_server_:
        yield pg, redis_server_


def raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="run", choices=["run", "endpoint"])
    parser.add_argument("--url", help="endpoint: the receiver's URL")
    parser.add_argument("--quick", action="store_true", help="1 round of 4 s, 2 000 sockets")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per phase (default 3)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per wrk run (10)")
    parser.add_argument("--fill", type=float, default=None, help="seconds of outbox filling (3)")
    parser.add_argument(
        "--queue-events", type=int, default=None, help="events each queue round delivers (1000)"
    )
    parser.add_argument("--sockets", type=int, default=None, help="idle websockets (10 000)")
    parser.add_argument("--socket-conversations", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=None, help="(15)")
    parser.add_argument("--ws-workers", type=int, default=4)
    parser.add_argument(
        "--phases",
        type=lambda text: [p.strip() for p in text.split(",") if p.strip()],
        default=["process", "history", "sockets", "queue"],
    )
    parser.add_argument(
        "--queues",
        type=lambda text: [q.strip() for q in text.split(",") if q.strip()],
        default=["celery", "database"],
        help="webhook queues (WEBHOOK_QUEUE) the queue phase compares, interleaved",
    )
    parser.add_argument("--output", type=Path, default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "endpoint":
        print(json.dumps(endpoint_create(args.url)))
        return 0
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.seconds = args.seconds or (4 if args.quick else 10)
    args.fill = args.fill or 3
    args.queue_events = args.queue_events or (300 if args.quick else 1000)
    args.sockets = args.sockets or (2000 if args.quick else 10_000)
    args.idle_seconds = args.idle_seconds or (6 if args.quick else 15)
    # 10 000 sockets: the client holds one descriptor each, and so do the servers (children
    # inherit the limit).
    args.open_files_limit = raise_open_files_limit()
    # Stopped from outside (SIGTERM, or SIGINT even when started in the background, where it
    # is ignored by default): unwind, so the servers, PostgreSQL and Redis are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with own_services() as (pg, redis_server_):
        results = Capacity(args, pg, redis_server_).run()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    output = args.output or RESULTS_DIR / ("capacity-quick.json" if args.quick else "capacity.json")
    results["settings"]["output"] = str(output)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results["model"], indent=2))
    print(f"→ {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
