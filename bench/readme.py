"""Splicing the benchmark summary into README.md between its markers."""

from __future__ import annotations

from pathlib import Path

from config.serving.serve import BASE_DIR

README = BASE_DIR / "README.md"
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


def splice_readme(summary: str, readme: Path = README) -> bool:
    if not readme.exists():
        return False
    text = readme.read_text()
    if MARK_START not in text or MARK_END not in text:
        return False
    head, _, rest = text.partition(MARK_START)
    _, _, tail = rest.partition(MARK_END)
    readme.write_text(f"{head}{MARK_START}\n{summary}\n{MARK_END}{tail}")
    return True
