"""bench/readme.py: what a full `make bench` writes into the README and docs/benchmarks.md."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench.readme import MARK_END, MARK_START, publish, splice_readme
from bench.render import baseline_name

# Seven or more hex digits with at least one letter (plain numbers are figures).
COMMIT_ID = re.compile(r"\b(?=[0-9]*[a-f])[0-9a-f]{7,40}\b")


@pytest.fixture
def results() -> dict[str, Any]:
    # A real three-sided run (Parley, the peer and an earlier Parley as the baseline), kept
    # beside the tests: bench/results/results.json is rewritten by every `make bench`, and the
    # figures below are this run's.
    return json.loads((Path(__file__).with_name("results_sample.json")).read_text())  # type: ignore[no-any-return]


def _marked(path: Path, inside: str = "old figures") -> Path:
    path.write_text(f"# Title\n\nbefore\n\n{MARK_START}\n{inside}\n{MARK_END}\n\nafter\n")
    return path


def _between_markers(path: Path) -> str:
    return path.read_text().split(MARK_START, 1)[1].split(MARK_END, 1)[0]


def test_readme_gets_the_ratios_to_the_peer_and_the_docs_the_full_tables(
    tmp_path: Path, results: dict[str, Any]
) -> None:
    readme, docs = _marked(tmp_path / "README.md"), _marked(tmp_path / "benchmarks.md")

    assert publish(results, readme=readme, docs=docs) is True

    summary, tables = _between_markers(readme), _between_markers(docs)
    assert "old figures" not in summary + tables
    assert readme.read_text().startswith("# Title\n\nbefore\n\n")
    assert readme.read_text().endswith(f"{MARK_END}\n\nafter\n")
    # The README: Parley / peer for each A/B scenario, the date, the machine, the way on.
    assert "| `POST /messages/process`, each customer on their own conversation | **1.33×** |" in (
        summary
    )
    assert "| … 50 000 messages | **1.58×** |" in summary
    assert "Last full run: 2026-12-06, 2 × AMD EPYC cores" in summary
    assert "[docs/benchmarks.md](docs/benchmarks.md)" in summary
    # ... and no history: the baseline's figures stay in the docs.
    assert "baseline" not in summary.lower()
    assert "| 1 POST /messages/process, own conversations | Parley / baseline | **2.57×** |" in (
        tables
    )


def test_no_commit_id_reaches_either_document(tmp_path: Path, results: dict[str, Any]) -> None:
    commit = results["baseline"]["commit"].split()[0]
    readme, docs = _marked(tmp_path / "README.md"), _marked(tmp_path / "benchmarks.md")

    publish(results, readme=readme, docs=docs)

    for path in (readme, docs):
        assert commit not in path.read_text()
        assert not COMMIT_ID.findall(_between_markers(path))


def test_the_baseline_is_named_by_its_date_when_the_run_recorded_one(
    results: dict[str, Any],
) -> None:
    dated = copy.deepcopy(results)
    dated["baseline"]["date"] = "2026-12-01"

    assert baseline_name(dated) == "Parley as of 2026-12-01"
    assert baseline_name(results) == "the previous release of Parley"


def test_a_file_without_markers_is_left_as_it_was(tmp_path: Path) -> None:
    plain = tmp_path / "README.md"
    plain.write_text("# Title\n\nno markers here\n")

    assert splice_readme("figures", plain) is False
    assert plain.read_text() == "# Title\n\nno markers here\n"
    assert splice_readme("figures", tmp_path / "missing.md") is False
    assert not (tmp_path / "missing.md").exists()
