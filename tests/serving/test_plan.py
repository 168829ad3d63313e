"""config.serving: the WSGI tier keeps a database connection per request thread; nothing else
does (under ASGI a persistent connection leaks one per request)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.serving import serve

BASE_DIR = Path(__file__).resolve().parents[2]


def _plan(*argv: str) -> serve.Plan:
    return serve.plan(serve.build_parser().parse_args(["--front", "none", *argv]))


def test_only_the_wsgi_command_keeps_connections() -> None:
    wsgi, asgi, worker = _plan("--webhook-workers", "1").commands
    assert wsgi[:2] == ["/usr/bin/env", "DB_CONN_MAX_AGE=600"]
    assert "granian" in wsgi[2]
    assert not any("DB_CONN_MAX_AGE" in part for part in asgi + worker)


def test_zero_leaves_the_wsgi_tier_on_the_pool() -> None:
    wsgi = _plan("--conn-max-age", "0").commands[0]
    assert "granian" in wsgi[0]
    assert not any("DB_CONN_MAX_AGE" in part for part in wsgi)


def test_the_shared_environment_never_carries_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_CONN_MAX_AGE", "600")
    assert "DB_CONN_MAX_AGE" not in serve.production_env()


def _database_settings(**env: str) -> dict[str, object]:
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "d = settings.DATABASES['default']; "
        "print(json.dumps({'age': d['CONN_MAX_AGE'], 'pool': 'pool' in d['OPTIONS']}))"
    )
    clean = {k: v for k, v in os.environ.items() if k != "DB_CONN_MAX_AGE"}
    completed = subprocess.run(  # noqa: S603 - our interpreter, fixed code
        [sys.executable, "-c", code],
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/parley_unused",
            **env,
        },
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_settings_pool_by_default_persistent_when_asked() -> None:
    assert _database_settings() == {"age": 0, "pool": True}
    assert _database_settings(DB_CONN_MAX_AGE="600") == {"age": 600, "pool": False}
