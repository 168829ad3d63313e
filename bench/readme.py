"""Publishing a full run: a short summary into README.md and the full tables into
docs/benchmarks.md, each between its `<!-- bench:start -->` and `<!-- bench:end -->` markers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.render import markdown, summary
from config.serving.serve import BASE_DIR

README = BASE_DIR / "README.md"
BENCHMARKS = BASE_DIR / "docs" / "benchmarks.md"
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


def splice_readme(text: str, readme: Path = README) -> bool:
    """Put `text` between the markers of `readme` (any Markdown file); False when the file or
    its markers are missing, and nothing is written."""
    if not readme.exists():
        return False
    current = readme.read_text()
    if MARK_START not in current or MARK_END not in current:
        return False
    head, _, rest = current.partition(MARK_START)
    _, _, tail = rest.partition(MARK_END)
    readme.write_text(f"{head}{MARK_START}\n{text}\n{MARK_END}{tail}")
    return True


def publish(results: dict[str, Any], *, readme: Path = README, docs: Path = BENCHMARKS) -> bool:
    """The README's summary and docs/benchmarks.md's tables from one results JSON; True when
    both had their markers."""
    readme_done = splice_readme(summary(results), readme)
    docs_done = splice_readme(markdown(results), docs)
    return readme_done and docs_done
