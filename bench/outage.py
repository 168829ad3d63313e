"""Readiness and graceful shutdown, measured: `python -m bench.outage`.

PostgreSQL and Redis on this machine are shared with other work, so they are never stopped.
Instead the production profile talks to them through two small TCP proxies of ours, and an
"outage" is the proxy going away:

  refuse     the proxy closes every connection and stops listening (a stopped server / a
             restart: connection refused at once)
  blackhole  the proxy keeps accepting but forwards nothing and drops what it had (a network
             partition / a hung host: nothing answers)

For each dependency and mode it records how fast `/ready` answers and with what, what a
`POST /messages/process` does meanwhile, and how long after the dependency returns `/ready`
is 200 again. Then graceful shutdown: SIGTERM while requests are in flight and websockets are
open -- in-flight requests must complete, websockets must be closed with 1001.
Writes bench/results/outage.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time
from typing import Any

import httpx

from bench import harness
from bench.run import RESULTS_DIR, Bench
from bench.ws import process_request


class Proxy:
    """A TCP proxy on its own thread and loop, with outage switches."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = harness.free_port()
        self.mode = "up"
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.call(self._listen())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        if self.mode == "blackhole":
            try:
                await reader.read()  # swallow, never answer
            finally:
                self.writers.discard(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self.writers.discard(writer)
            return
        self.writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if self.mode != "up":
                        break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers.discard(writer)
        self.writers.discard(up_writer)

    async def _drop_all(self) -> None:
        for writer in list(self.writers):
            transport = writer.transport
            transport.abort()
        self.writers.clear()

    async def _set(self, mode: str) -> None:
        self.mode = mode
        await self._drop_all()
        if mode == "refuse" and self.server is not None:
            self.server.close()
            self.server = None
        elif mode in ("up", "blackhole") and self.server is None:
            await self._listen()

    def set(self, mode: str) -> None:
        self.call(self._set(mode))


def timed_get(client: httpx.Client, path: str) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        response = client.get(path)
        body: Any = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else response.text[:200]
        )
        status: int | str = response.status_code
    except httpx.HTTPError as exc:
        status, body = type(exc).__name__, None
    return {"status": status, "seconds": round(time.perf_counter() - started, 3), "body": body}


def timed_post(client: httpx.Client, customer: dict[str, Any], message: str) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        response = client.post(**process_request(customer, message))
        status: int | str = response.status_code
        body = response.text[:200]
    except httpx.HTTPError as exc:
        status, body = type(exc).__name__, ""
    return {"status": status, "seconds": round(time.perf_counter() - started, 3), "body": body}


def wait_ready(client: httpx.Client, timeout: float = 60) -> float | None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if timed_get(client, "/ready")["status"] == 200:
            return round(time.perf_counter() - started, 2)
        time.sleep(0.25)
    return None


def outages(bench: Bench, pg: Proxy, redis_proxy: Proxy, hold: float) -> list[dict[str, Any]]:
    customer = bench.seed["customers"][0]
    rows = []
    with httpx.Client(base_url=bench.http_url, timeout=60) as client:
        for name, proxy in (("postgresql", pg), ("redis", redis_proxy)):
            for mode in ("refuse", "blackhole"):
                baseline = timed_get(client, "/ready")
                proxy.set(mode)
                time.sleep(0.5)
                during_ready = [timed_get(client, "/ready") for _ in range(2)]
                during_post = timed_post(client, customer, bench.seed["message"])
                during_health = timed_get(client, "/health")
                time.sleep(hold)
                proxy.set("up")
                recovered = wait_ready(client)
                after_post = timed_post(client, customer, bench.seed["message"])
                row = {
                    "dependency": name,
                    "mode": mode,
                    "ready_before": baseline,
                    "ready_during": during_ready,
                    "process_during": during_post,
                    "health_during": during_health,
                    "ready_again_after_s": recovered,
                    "process_after": after_post,
                }
                bench.log(
                    f"{name} {mode}: /ready {[(r['status'], r['seconds']) for r in during_ready]}, "
                    f"process {during_post['status']} in {during_post['seconds']} s, "
                    f"ready again after {recovered} s, then process {after_post['status']}"
                )
                rows.append(row)
    return rows


async def _shutdown_probe(bench: Bench, server: harness.Server, requests: int) -> dict[str, Any]:
    """SIGTERM with `requests` requests in flight and 20 websockets open."""
    import websockets

    customers = bench.seed["customers"]
    sockets = []
    for customer in customers[:20]:
        ws = await websockets.connect(
            f"{bench.ws_url}/ws/conversations/{customer['conversation_id']}/",
            origin="http://127.0.0.1",
        )
        await ws.send(json.dumps({"type": "auth", "token": customer["token"]}))
        await ws.recv()
        sockets.append(ws)
    history = bench.seed["history"]
    reader = next(c for c in customers if c["id"] == history["customer_id"])
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=bench.http_url, timeout=60, limits=limits) as client:

        async def slow_request() -> int | str:
            # 1 000 messages of the 50 000-message conversation: tens of ms each, so
            # several are in flight when the signal lands.
            try:
                response = await client.get(
                    f"/api/v1/conversations/{history['large']}/history?limit=1000",
                    headers={"Authorization": f"Bearer {reader['token']}"},
                )
                return response.status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__

        tasks = [asyncio.create_task(slow_request()) for _ in range(requests)]
        await asyncio.sleep(0.15)
        in_flight = sum(1 for t in tasks if not t.done())
        assert server.process is not None
        signalled = time.perf_counter()
        server.process.send_signal(signal.SIGTERM)
        statuses = await asyncio.gather(*tasks)

    async def close_code(ws: Any) -> int | None:
        try:
            await asyncio.wait_for(ws.wait_closed(), 10)
        except TimeoutError:
            return None
        return ws.close_code

    codes = await asyncio.gather(*(close_code(ws) for ws in sockets))
    exit_code = await asyncio.get_running_loop().run_in_executor(None, server.process.wait, 30)
    counts: dict[str, int] = {}
    for status in statuses:
        counts[str(status)] = counts.get(str(status), 0) + 1
    close_counts: dict[str, int] = {}
    for code in codes:
        close_counts[str(code)] = close_counts.get(str(code), 0) + 1
    return {
        "requests_in_flight_at_sigterm": in_flight,
        "request_results": counts,
        "websocket_close_codes": close_counts,
        "server_exit_code": exit_code,
        "stopped_after_s": round(time.perf_counter() - signalled, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.outage")
    parser.add_argument("--hold", type=float, default=3.0, help="seconds each outage lasts")
    args = parser.parse_args(argv)
    bench_args = argparse.Namespace(
        quick=True,
        runs=1,
        duration=1,
        warmup=1,
        topology="split",
        wsgi_server=None,
        threads=None,
    )
    bench = Bench(bench_args)
    bench.setup()  # real PostgreSQL/Redis: schema, seed
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(bench.env["DATABASE_URL"])
    pg = Proxy(str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)))
    redis_url = bench.env["REDIS_URL"]
    redis_host_port = redis_url.split("//", 1)[1].split("/", 1)[0]
    redis_host, _, redis_port = redis_host_port.rpartition(":")
    rproxy = Proxy(redis_host or "127.0.0.1", int(redis_port or 6379))
    bench.env["DATABASE_URL"] = bench.env["DATABASE_URL"].replace(
        f":{info.get('port', 5432)}/", f":{pg.port}/"
    )
    bench.env["REDIS_URL"] = redis_url.replace(redis_host_port, f"127.0.0.1:{rproxy.port}")
    results: dict[str, Any] = {
        "settings": {k: bench.env.get(k) for k in ("DB_POOL_TIMEOUT", "DB_POOL_MAX_SIZE")},
    }
    bench.start_server()
    results["outages"] = outages(bench, pg, rproxy, args.hold)
    assert bench.server is not None
    bench.server.stop()
    # Graceful shutdown: with as many requests as the WSGI tier runs at once (2 workers x 4
    # threads), and with more than that (the rest wait in granian's queue / the listen backlog).
    results["graceful_shutdown"] = {}
    for requests in (8, 32):
        bench.start_server()
        assert bench.server is not None
        probe = asyncio.run(_shutdown_probe(bench, bench.server, requests))
        results["graceful_shutdown"][f"{requests}_requests"] = probe
        bench.log(f"graceful shutdown, {requests} requests: {json.dumps(probe)}")
        bench.server.stop()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / os.environ.get("OUTAGE_OUTPUT", "outage.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    bench.log(f"→ {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
