"""Imports run one way: wiring → integrations → escalations → messaging → accounts → core.

Every .py file of core/, the apps and config/ is parsed with `ast`, and every import in it is
checked — at module level, inside functions and inside `if TYPE_CHECKING:` blocks alike (a
type-only import still couples the modules; downward it is fine, upward it fails like any
other). An import may point to its own layer or any layer below; core/ (the shared plumbing)
imports no app and no wiring, and no app imports config/ (wiring: settings come through
django.conf). Migrations and tests are not checked (migrations freeze history, tests
drive every layer). The failure names each offending file:line. docs/architecture.md explains
the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Lowest first. A module may import modules of its own rank or a lower one.
CORE, ACCOUNTS, MESSAGING, ESCALATIONS, INTEGRATIONS, WIRING = range(6)
LAYER_NAMES = ["core", "accounts", "messaging", "escalations", "integrations", "wiring"]
APPS = {
    "core": CORE,
    "accounts": ACCOUNTS,
    "messaging": MESSAGING,
    "escalations": ESCALATIONS,
    "integrations": INTEGRATIONS,
}
CHECKED = ("core", "accounts", "messaging", "escalations", "integrations", "config")


def layer_of(module: str) -> int | None:
    """The layer of a dotted module name, or None for anything outside the project."""
    parts = module.split(".")
    if parts[0] in APPS:
        return APPS[parts[0]]
    if parts[0] == "config":
        return WIRING
    return None


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(node: ast.AST, module: str, is_package: bool, root: Path) -> list[str]:
    """The project modules an Import/ImportFrom node names (relative imports resolved;
    `from core import errors` counts as core.errors when that is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = package[: len(package) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    names = []
    for alias in node.names:
        candidate = f"{target}.{alias.name}"
        as_path = root.joinpath(*candidate.split("."))
        if as_path.with_suffix(".py").exists() or (as_path / "__init__.py").exists():
            names.append(candidate)
        else:
            names.append(target)
    return names


def source_files(root: Path) -> list[Path]:
    files = []
    for top in CHECKED:
        for path in sorted((root / top).rglob("*.py")) if (root / top).is_dir() else []:
            if "migrations" in path.parts or "tests" in path.parts:
                continue
            files.append(path)
    return files


def violations(root: Path) -> list[str]:
    found = []
    for path in source_files(root):
        module = module_name(path, root)
        own = layer_of(module)
        assert own is not None, module
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for target in imported_modules(node, module, path.name == "__init__.py", root):
                theirs = layer_of(target)
                if theirs is None or theirs <= own:
                    continue
                found.append(
                    f"{path.relative_to(root)}:{node.lineno}: {module} ({LAYER_NAMES[own]}) "
                    f"imports {target} ({LAYER_NAMES[theirs]}), a layer above it"
                )
    return found


def test_no_import_points_up_a_layer() -> None:
    problems = violations(ROOT)
    assert problems == [], "Imports against the layers:\n" + "\n".join(problems)


def test_every_checked_module_has_a_layer() -> None:
    modules = [module_name(path, ROOT) for path in source_files(ROOT)]
    assert modules  # the walk found the project
    assert {"accounts.sockets", "messaging.handoff", "core.errors"} <= set(modules)
    assert all(layer_of(module) is not None for module in modules)


# --- The checker itself catches what it must ---------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for package in ("core", "accounts", "messaging", "escalations", "config"):
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    return tmp_path


@pytest.mark.parametrize(
    ("files", "offender"),
    [
        (  # inside a function body
            {"messaging/services.py": "def f():\n    from escalations.services import x\n"},
            "messaging/services.py:2: messaging.services (messaging) imports "
            "escalations.services (escalations)",
        ),
        (  # a type-only import, upward
            {
                "accounts/auth.py": "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from messaging.models import Conversation\n"
            },
            "accounts/auth.py:3: accounts.auth (accounts) imports messaging.models (messaging)",
        ),
        (  # core importing an app, with `import x.y`
            {"core/errors.py": "import accounts.models\n"},
            "core/errors.py:1: core.errors (core) imports accounts.models (accounts)",
        ),
        (  # core importing wiring, via `from config import settings`
            {"core/pagination.py": "from config import settings\n", "config/settings.py": ""},
            "core/pagination.py:1: core.pagination (core) imports config.settings (wiring)",
        ),
        (  # an app importing wiring
            {"messaging/api.py": "from config.settings import DEBUG\n", "config/settings.py": ""},
            "messaging/api.py:1: messaging.api (messaging) imports config.settings (wiring)",
        ),
        (  # a relative import
            {
                "escalations/management/__init__.py": "",
                "escalations/management/commands/__init__.py": "",
                "accounts/management/__init__.py": "",
                "accounts/management/commands/__init__.py": "",
                "accounts/management/commands/seed.py": "from ....escalations import services\n",
            },
            "accounts/management/commands/seed.py:1: accounts.management.commands.seed "
            "(accounts) imports escalations (escalations)",
        ),
    ],
    ids=[
        "function-body",
        "type-checking",
        "core-to-app",
        "core-to-wiring",
        "app-to-wiring",
        "relative",
    ],
)
def test_checker_reports_upward_imports(
    tmp_path: Path, files: dict[str, str], offender: str
) -> None:
    problems = violations(_tree(tmp_path, files))
    assert len(problems) == 1
    assert problems[0].startswith(offender)


def test_checker_allows_downward_and_sideways_imports(tmp_path: Path) -> None:
    files = {
        "escalations/services.py": "from messaging.services import x\nimport accounts.auth\n",
        "messaging/services.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from accounts.models import User\nfrom core.errors import NotFound\n"
        "from messaging import handoff\n",
        "config/api.py": "from escalations.api import router\n",
        "core/errors.py": "from core.request_context import CallContext\nimport django\n",
    }
    assert violations(_tree(tmp_path, files)) == []
