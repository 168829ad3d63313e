"""docs/architecture.md's "Where each rule lives" names live code: every name in its second
column is imported here, so a renamed or deleted function fails this test instead of leaving
the table pointing at nothing.

How a cell reads: a path (`messaging/fastpath.py`) names a module (or, under tests/, a file)
and the bare names after it (`messages_write`, `Policy.enforce`) belong to it; a dotted name
(`messaging.permissions.CONVERSATION_READERS`) is a module and attributes."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PACKAGES = ("accounts", "core", "messaging", "escalations", "integrations", "config")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def _rule_cells() -> list[tuple[str, str]]:
    text = ARCHITECTURE.read_text()
    section = text.split("## Where each rule lives", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return [(rule, where) for rule, where in cells[1:]]  # the header row is not a rule


def _attribute(module: Any, dotted: str) -> Any:
    found = module
    for part in dotted.split("."):
        found = getattr(found, part)
    return found


def _resolve(name: str) -> Any:
    """A dotted name: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        return _attribute(module, ".".join(parts[cut:])) if cut < len(parts) else module
    raise ModuleNotFoundError(name)


def _stale(where: str) -> list[str]:
    problems = []
    module: Any = None
    for token in re.findall(r"`([^`]+)`", where):
        if token.endswith(".py"):
            path = ROOT / token
            if not path.is_file():
                problems.append(f"{token}: no such file")
                module = None
            elif not token.startswith("tests/"):
                module = importlib.import_module(token[: -len(".py")].replace("/", "."))
            continue
        if not NAME.fullmatch(token):
            problems.append(f"{token}: not a name")
            continue
        try:
            if token.split(".")[0] in PACKAGES:
                _resolve(token)
            elif module is None:
                problems.append(f"{token}: no module named before it")
            else:
                _attribute(module, token)
        except (AttributeError, ModuleNotFoundError) as exc:
            problems.append(f"{token}: {exc}")
    return problems


def test_every_name_in_the_rule_table_is_live() -> None:
    cells = _rule_cells()
    assert len(cells) >= 20
    stale = {rule: problems for rule, where in cells if (problems := _stale(where))}
    assert stale == {}


def test_the_check_itself_finds_a_stale_name() -> None:
    assert _stale("`messaging/fastpath.py`: `messages_write`, `no_such_writer`") == [
        "no_such_writer: module 'messaging.fastpath' has no attribute 'no_such_writer'"
    ]
    assert _stale("`messaging.selectors.conversation_with_recent_messages`") != []
    assert _stale("`messaging/gone.py`: `x`") == [
        "messaging/gone.py: no such file",
        "x: no module named before it",
    ]
