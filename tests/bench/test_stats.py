"""bench/stats.py: the paired per-round ratios `make bench` reports, and how they are printed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bench.harness import WrkResult
from bench.render import interval_text, markdown, summary
from bench.run import ab_ratio
from bench.stats import bootstrap_median_interval, paired_ratio


def _run(rps: float, cpu: float | None = 2.0) -> WrkResult:
    return WrkResult(
        rps=rps,
        requests=int(rps * 10),
        errors=0,
        statuses={},
        p50_ms=90.0,
        p90_ms=100.0,
        p99_ms=120.0,
        max_ms=200.0,
        cpu_ms_per_request=cpu,
    )


def test_a_round_ratio_is_taken_within_the_round_not_across_rounds() -> None:
    # The machine doubled its speed after two rounds: each round's own ratio is still 1.1,
    # so the drift leaves neither the figure nor its interval.
    a = [110.0, 110.0, 220.0, 220.0, 220.0]
    b = [100.0, 100.0, 200.0, 200.0, 200.0]

    ratio = paired_ratio(a, b)

    assert ratio is not None
    assert ratio["median"] == 1.1
    assert ratio["each"] == [1.1] * 5
    assert ratio["low"] == ratio["high"] == 1.1
    assert ratio["rounds"] == 5


def test_the_interval_holds_the_median_and_widens_with_the_spread() -> None:
    tight = paired_ratio([1.00, 1.01, 0.99, 1.02, 1.00, 0.98], [1.0] * 6)
    loose = paired_ratio([0.80, 1.20, 0.90, 1.15, 1.00, 0.85], [1.0] * 6)

    assert tight is not None
    assert loose is not None
    assert tight["low"] <= tight["median"] <= tight["high"]
    assert loose["low"] <= loose["median"] <= loose["high"]
    assert loose["high"] - loose["low"] > tight["high"] - tight["low"]


def test_the_interval_is_the_same_for_the_same_rounds() -> None:
    values = [0.93, 1.04, 1.10, 0.97, 1.01, 1.06, 0.99]

    assert bootstrap_median_interval(values) == bootstrap_median_interval(list(values))


def test_rounds_without_a_figure_are_left_out_and_none_left_is_none() -> None:
    ratio = paired_ratio([2.0, None, 3.0], [1.0, 1.0, 0.0])

    assert ratio is not None
    assert ratio["each"] == [2.0]
    assert paired_ratio([None, 0.0], [1.0, 1.0]) is None


def test_unequal_rounds_are_refused() -> None:
    with pytest.raises(ValueError, match="3 rounds against 2"):
        paired_ratio([1.0, 1.0, 1.0], [1.0, 1.0])


def test_ab_ratio_pairs_every_figure_round_by_round() -> None:
    parley = [_run(700), _run(640, cpu=1.8), _run(690, cpu=None)]
    peer = [_run(500), _run(520), _run(505)]

    ratio = ab_ratio(parley, peer)

    assert ratio["rps"] is not None
    assert ratio["rps"]["each"] == [1.4, round(640 / 520, 3), round(690 / 505, 3)]
    assert ratio["rps"]["median"] == round(690 / 505, 3)
    # The third round has no CPU figure on Parley's side: two rounds paired.
    assert ratio["cpu_ms_per_request"] is not None
    assert ratio["cpu_ms_per_request"]["rounds"] == 2
    # Nobody measured PostgreSQL's CPU: no ratio, not a zero.
    assert ratio["db_cpu_ms_per_request"] is None


def test_interval_text_shows_the_interval_only_for_paired_rounds() -> None:
    assert interval_text({"median": 1.034, "low": 0.991, "high": 1.072, "rounds": 9}) == (
        "1.03× (0.99–1.07)"
    )
    assert interval_text({"median": 1.2, "low": 1.2, "high": 1.2, "rounds": 1}) == "1.20×"
    assert interval_text(1.3) == "1.30×"
    assert interval_text(None) == "–"


@pytest.fixture
def paired_results() -> dict[str, Any]:
    """The sample run with its process scenario's ratios as a paired run records them."""
    results = json.loads((Path(__file__).with_name("results_sample.json")).read_text())
    results = copy.deepcopy(results)
    results["settings"]["new_servers_each_round"] = True
    scenario = results["scenarios"]["1_process_distinct"]
    for key in ("ratio", "ratio_vs_baseline", "ratio_baseline_vs_peer"):
        scenario[key] = {
            figure: (
                None
                if value is None
                else {"median": value, "low": value - 0.05, "high": value + 0.04, "rounds": 9}
            )
            for figure, value in scenario[key].items()
        }
    return results  # type: ignore[no-any-return]


def test_the_tables_and_the_readme_carry_the_interval_of_a_paired_run(
    paired_results: dict[str, Any],
) -> None:
    tables, short = markdown(paired_results), summary(paired_results)
    process_row = "| `POST /messages/process`, each customer on their own conversation | "

    # The docs' tables: the ratio with its interval, how the rounds were run, and the target
    # judged on the paired figure.
    for expected in (
        "| **Parley / peer** | **1.33× (1.28–1.37)** |",
        "every side of every round served by new processes",
        "1.33× (1.28–1.37) req/s",
    ):
        assert expected in tables
    # The README's short table.
    assert f"{process_row}**1.33× (1.28–1.37)** |" in short
    assert "every round on new server processes" in short
