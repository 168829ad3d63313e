"""Load drivers that are not wrk: pgbench running the captured SQL of one request."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from bench import harness


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
