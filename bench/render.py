"""Turning a results JSON into the Markdown summary (bench/results/summary.md, README block)."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "process_vs_pgbench": 0.5,
    "push_p99_ms": 50.0,
    "held_sockets": 1000,
    "history_p50_growth": 1.5,  # 50 000 vs 50 messages: "flat" = within noise
}


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
