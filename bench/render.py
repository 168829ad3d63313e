"""Turning a results JSON into the Markdown summary (bench/results/summary.md, README block)."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "process_vs_peer_rps": 1.2,  # Parley's req/s over the peer's, same run
    "push_p99_ms": 50.0,
    "held_sockets": 1000,
    "history_p50_growth": 1.5,  # 50 000 vs 50 messages: "flat" = within noise
}
# The A/B scenarios as the README names them.
SUMMARY_ROWS = {
    "1_process_distinct": "`POST /messages/process`, each customer on their own conversation",
    "2_process_one_conversation": "… everyone on one conversation (row-lock contention)",
    "3_history_small": "`GET …/history?limit=50`, 50 messages",
    "3_history_large": "… 50 000 messages",
}
# The ceilings: PostgreSQL alone running the SQL of one process request (bench/drivers.py).
PGBENCH_ROWS = {
    "pgbench_distinct": "6 ceiling: pgbench, Parley's process SQL, own conversations",
    "pgbench_one_conversation": "6 ceiling: pgbench, Parley's process SQL, one conversation",
}


def _side(scenario: dict[str, Any] | None, side: str = "parley") -> dict[str, Any]:
    """One side of an A/B scenario (older single-server results: the scenario itself)."""
    if not scenario:
        return {}
    return scenario.get(side, scenario if side == "parley" else {})  # type: ignore[no-any-return]


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    s, c = results["scenarios"], results["ceilings"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    out: dict[str, Any] = {}
    for key in (
        "1_process_distinct",
        "2_process_one_conversation",
        "3_history_small",
        "3_history_large",
    ):
        if s.get(key, {}).get("ratio"):
            out[f"{key}_parley_vs_peer"] = s[key]["ratio"]
    one = _side(s.get("1_process_distinct")).get("rps")
    two = _side(s.get("2_process_one_conversation")).get("rps")
    out["1_vs_pgbench"] = ratio(one, c.get("pgbench_distinct", {}).get("tps"))
    out["2_vs_pgbench"] = ratio(two, c.get("pgbench_one_conversation", {}).get("tps"))
    out["1_vs_health"] = ratio(one, c.get("health", {}).get("rps"))
    small = _side(s.get("3_history_small"))
    large = _side(s.get("3_history_large"))
    out["3_history_p50_large_vs_small"] = ratio(large.get("p50_ms"), small.get("p50_ms"))
    return out


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        value = f"{value:,.0f}" if value >= 100 else f"{value:.3g}" if value < 1 else f"{value:.1f}"
    return f"{value}{suffix}"


def _met(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**missed**")


def ratio_value(ratio: float | dict[str, Any] | None) -> float | None:
    """A ratio's figure: the median of the per-round ratios (bench/stats.py), or the plain
    ratio of medians that runs before paired rounds recorded."""
    return ratio["median"] if isinstance(ratio, dict) else ratio


def _ratio_text(ratio: float | dict[str, Any] | None) -> str:
    value = ratio_value(ratio)
    # A negative figure is an accounting artefact (runs before PostgreSQL CPU was taken only
    # over backends alive at both ends): shown as missing.
    return "–" if value is None or value < 0 else f"{value:.2f}×"


def interval_text(ratio: float | dict[str, Any] | None) -> str:
    """`1.03× (0.99–1.07)`: the figure and, where rounds were paired, its 95 % interval."""
    text = _ratio_text(ratio)
    if isinstance(ratio, dict) and ratio["rounds"] > 1:
        text += f" ({ratio['low']:.2f}–{ratio['high']:.2f})"
    return text


def _positive(value: float | None) -> float | None:
    return None if value is None or value < 0 else value


def _row(*cells: Any) -> str:
    """One Markdown table row."""
    return "|" + "|".join(f" {cell} " if str(cell) else " " for cell in cells) + "|"


def baseline_name(results: dict[str, Any]) -> str:
    """How the documents name the baseline side: by its date, never by a commit id (the JSON
    keeps the commit for whoever reproduces the run)."""
    date = (results.get("baseline") or {}).get("date")
    return f"Parley as of {date}" if date else "the previous release of Parley"


def _rounds_text(settings: dict[str, Any]) -> str:
    if not settings.get("new_servers_each_round"):
        return ""
    return (
        "every side of every round served by new processes, each ratio the median of the "
        "rounds' own ratios with its 95 % bootstrap interval in brackets, "
    )


def markdown(results: dict[str, Any]) -> str:
    s, c, r, m = results["scenarios"], results["ceilings"], results["ratios"], results["machine"]
    quick = results["mode"].startswith("quick")
    settings = results["settings"]
    # Busy means other work was competing for the cores when the run started. The load at the
    # end is the benchmark's own (wrk, the servers, PostgreSQL), so it says nothing about that.
    load = m["load_average_at_start"][0]
    busy = load > 0.5 * m["nproc"]
    lines = []
    # No heading: the README section that embeds this has its own.
    if quick:
        lines += ["**Preliminary: a quick run (`--quick`), for iteration.**", ""]
    if results.get("baseline"):
        lines += [f"Baseline: {baseline_name(results)}, served in the same run.", ""]
    elif busy:
        lines += [
            f"**The machine was busy (load average {load:.1f} on {m['nproc']} cores at the "
            "start): read the ratios, which both sides share, rather than the absolute "
            "figures.**",
            "",
        ]
    lines.append(
        f"`make bench`, {results['started_at']}: {m['nproc']} × {m['cpu_model']}, "
        f"PostgreSQL {m['postgresql']}, Redis {m['redis']}, Python {m['python']}, "
        f"{m['wrk']}. Load average at start {m['load_average_at_start']}, at end "
        f"{results.get('load_average_at_end')}. Parley: {results.get('topology')}. "
        f"Peer: {results.get('peer', '–')}. Interleaved, {settings['runs']} rounds of "
        f"{settings['duration_s']} s per side and scenario (median), {_rounds_text(settings)}"
        f"{settings['connections']} connections, bench/lua/parley.lua; "
        f"RATE_LIMIT_MESSAGES={settings['RATE_LIMIT_MESSAGES']} and "
        f"AGENT_MAX_TURNS={settings['AGENT_MAX_TURNS']} so neither the rate limit "
        "nor escalation changes the measured path. Raw figures: `bench/results/` (every "
        "round of every side)."
    )
    lines += [
        "",
        "| scenario | side | req/s | p50 ms | p99 ms | errors | server CPU ms/req "
        "| PostgreSQL CPU ms/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    ab_rows = (
        ("1_process_distinct", "1 POST /messages/process, own conversations"),
        ("2_process_one_conversation", "2 … all on one conversation"),
        ("3_history_small", "3 GET history?limit=50, 50 messages"),
        ("3_history_large", "3 GET history?limit=50, 50 000 messages"),
    )
    for key, label in ab_rows:
        scenario = s.get(key)
        if not scenario:
            continue
        sides = [side for side in ("baseline", "parley", "peer") if side in scenario] or ["parley"]
        names = {"parley": "Parley", "peer": "peer", "baseline": "Parley baseline"}
        for side in sides:
            d = _side(scenario, side)
            lines.append(
                _row(
                    label,
                    names[side],
                    _fmt(d.get("rps")),
                    _fmt(d.get("p50_ms")),
                    _fmt(d.get("p99_ms")),
                    d.get("errors_total", "–"),
                    _fmt(d.get("cpu_ms_per_request")),
                    _fmt(_positive(d.get("db_cpu_ms_per_request"))),
                )
            )
        for key, title in (
            ("ratio_baseline_vs_peer", "baseline / peer"),
            ("ratio", "**Parley / peer**"),
            ("ratio_vs_baseline", "Parley / baseline"),
        ):
            ratio = scenario.get(key)
            if ratio:
                lines.append(
                    _row(
                        label,
                        title,
                        f"**{interval_text(ratio['rps'])}**",
                        _ratio_text(ratio["p50_ms"]),
                        _ratio_text(ratio["p99_ms"]),
                        "",
                        _ratio_text(ratio["cpu_ms_per_request"]),
                        _ratio_text(ratio["db_cpu_ms_per_request"]),
                    )
                )
    health = c.get("health")
    if health:
        lines.append(
            _row(
                "6 ceiling: GET /health (same server)",
                "Parley",
                _fmt(health["rps"]),
                _fmt(health["p50_ms"]),
                _fmt(health["p99_ms"]),
                health["errors_total"],
                _fmt(health["cpu_ms_per_request"]),
                "",
            )
        )
    lines += [
        _row(
            label,
            "PostgreSQL",
            f"{_fmt(p['tps'])} tps",
            f"avg {p['latency_avg_ms']}",
            "",
            p["failed_total"],
            "",
            "",
        )
        for key, label in PGBENCH_ROWS.items()
        if (p := c.get(key))
    ]

    # Targets
    checks = []
    one = s.get("1_process_distinct")
    if one and "peer" in one:
        p, q, ratio = one["parley"], one["peer"], one["ratio"]
        ok = (
            (ratio_value(ratio["rps"]) or 0) >= TARGETS["process_vs_peer_rps"]
            and not p["errors_total"]
            and (p["p99_ms"] or 0) <= (q["p99_ms"] or 0)
            and (p["cpu_ms_per_request"] or 0) < (q["cpu_ms_per_request"] or 0)
        )
        checks.append(
            f"process ≥ 1.2× the peer's req/s, 0 errors, p99 ≤ the peer's, CPU/request below "
            f"the peer's: {interval_text(ratio['rps'])} req/s, {p['errors_total']} errors, p99 "
            f"{_ratio_text(ratio['p99_ms'])}, CPU {_ratio_text(ratio['cpu_ms_per_request'])} "
            f"— {_met(ok)}"
        )
    two = s.get("2_process_one_conversation")
    if two:
        for side in ("parley", "peer"):
            seq = _side(two, side).get("seq_check")
            if seq:
                checks.append(
                    f"{side}: seq gap-free on the shared conversation after "
                    f"{seq.get('messages')} messages — {_met(seq.get('gap_free'))}"
                )
    growth = r.get("3_history_p50_large_vs_small")
    if growth is not None:
        checks.append(
            f"history flat from 50 to 50 000 messages (p50 ratio ≤ 1.5): {growth:.2f} — "
            f"{_met(growth <= TARGETS['history_p50_growth'])}"
        )
    if checks:
        lines += ["", *[f"- {line}" for line in checks]]

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
    lines += _operators_lines(s)
    lines.append("")
    return "\n".join(lines)


def summary(results: dict[str, Any]) -> str:
    """The README's few lines: Parley against the peer in the last full run, when and on what
    machine; the tables and how they were measured are in docs/benchmarks.md."""
    s, m = results["scenarios"], results["machine"]
    settings = results["settings"]
    lines = [
        f"Last full run: {results['started_at'][:10]}, {m['nproc']} × {m['cpu_model']} cores, "
        f"PostgreSQL {m['postgresql'].split()[0]}, Redis {m['redis']}, Python {m['python']}; "
        f"{settings['connections']} connections, Parley and the peer in turns "
        f"({settings['runs']} rounds of {settings['duration_s']:g} s each, medians"
        + (
            "; every round on new server processes, the median of the rounds' ratios with "
            "its 95 % interval)."
            if settings.get("new_servers_each_round")
            else ")."
        ),
        "",
        "| Parley / peer | req/s | p99 | server CPU per request |",
        "|---|---:|---:|---:|",
    ]
    for key, label in SUMMARY_ROWS.items():
        ratio = (s.get(key) or {}).get("ratio")
        if ratio:
            lines.append(
                _row(
                    label,
                    f"**{interval_text(ratio['rps'])}**",
                    _ratio_text(ratio["p99_ms"]),
                    _ratio_text(ratio["cpu_ms_per_request"]),
                )
            )
    push, held = s.get("4_push_latency") or {}, s.get("5_held_websockets")
    own, fanout = push.get("one_conversation_each"), push.get("fanout_one_conversation")
    facts = []
    if own and "after_response" in own:
        facts.append(
            f"{own['clients']} clients, each on their own conversation, get their replies "
            f"with p99 {own['after_response']['p99_ms']:g} ms"
        )
    if fanout and "after_response" in fanout:
        facts.append(
            f"{fanout['clients']} sockets on one conversation, p99 "
            f"{fanout['after_response']['p99_ms']:g} ms"
        )
    if held:
        facts.append(
            f"one websocket process holds {held['connected']:,} idle sockets "
            f"({held['kib_per_connection']:g} KiB each)"
        )
    if facts:
        lines += ["", "Live pushes: " + "; ".join(facts) + "."]
    lines += [
        "",
        "Above 1× in req/s, below 1× in p99 and CPU: Parley ahead. The full tables, the "
        "method and earlier runs: [docs/benchmarks.md](docs/benchmarks.md).",
    ]
    return "\n".join(lines)


def _operators_lines(s: dict[str, Any]) -> list[str]:
    """Scenarios 6 (search) and 7 (burst), bench/operators.py."""
    lines: list[str] = []
    search = s.get("7_search")
    if search:
        cost = search["write_cost"]
        lines += [
            "",
            f"Search index write cost (scenario 7): pgbench on one message turn's SQL, "
            f"{cost['clients']} clients: {cost['with_index']['tps']} tps with the search "
            f"column and GIN index, {cost['without_index']['tps']} without "
            f"(ratio {cost['tps_ratio_with_over_without']}).",
            "",
            "| GET /search (scenario 7) | messages | p50 ms | p95 ms | p99 ms | "
            "target p95 < 100 ms |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for size in search["sizes"]:
            a = size["all"]
            lines.append(
                f"| all queries | {size['messages']} | {a['p50_ms']} | {a['p95_ms']} | "
                f"{a['p99_ms']} | {_met(a['p95_ms'] < 100)} |"
            )
    burst = s.get("8_burst")
    if burst:
        checks = burst["checks"]
        ok = (
            checks["over_capacity"] == 0
            and checks["conversations_joined_twice"] == 0
            and burst["escalations_with_more_than_one_assigned_event"] == 0
            and checks["assigned"] == burst["escalations"]
        )
        lines += [
            "",
            f"Burst (scenario 8): {burst['escalations']} hand-offs, {burst['concurrency']} at "
            f"once, {burst['operators']} operators online: all answered in "
            f"{burst['seconds_to_answer_all']} s ({burst['handoffs_per_second']}/s; hand-off "
            f"p50 {burst['handoff_p50_ms']} ms, p99 {burst['handoff_p99_ms']} ms), all assigned "
            f"after {burst['seconds_until_all_assigned']} s, every "
            f"`assigned` event received after {burst['seconds_until_every_assigned_event']} s; "
            f"{checks['assigned']} assigned, most per operator {checks['max_per_operator']}, "
            f"over capacity {checks['over_capacity']}, assigned twice "
            f"{checks['conversations_joined_twice']}: {_met(ok)}.",
        ]
    return lines
