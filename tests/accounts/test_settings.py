"""Production settings: start-up refuses unsafe configuration; `check --deploy` is clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "s" * 24 + "-production-secret-key-0123456789"
GOOD_JWT = "j" * 24 + "-production-jwt-signing-key-98765"


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DEBUG",
            "SECRET_KEY",
            "JWT_SIGNING_KEY",
            "ALLOWED_HOSTS",
            "CORS_ALLOWED_ORIGINS",
            "CSRF_TRUSTED_ORIGINS",
        }
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": GOOD_SECRET,
    "JWT_SIGNING_KEY": GOOD_JWT,
    "ALLOWED_HOSTS": "parley.example.com",
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
}


@pytest.mark.slow
def test_check_deploy_is_clean_with_production_env() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"SECRET_KEY": "too-short"}, "SECRET_KEY"),
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"JWT_SIGNING_KEY": "short"}, "JWT_SIGNING_KEY"),
        ({"JWT_SIGNING_KEY": GOOD_SECRET}, "JWT_SIGNING_KEY"),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS"),
        ({"CORS_ALLOWED_ORIGINS": "*"}, "CORS_ALLOWED_ORIGINS"),
    ],
)
def test_start_up_refuses_unsafe_production_settings(
    overrides: dict[str, str], variable: str
) -> None:
    result = _manage("check", **{**PRODUCTION, **overrides})
    assert result.returncode != 0
    message = result.stderr.strip()
    assert message.startswith("Parley configuration error:")
    assert variable in message
    assert "\n" not in message  # one line, no traceback
    assert "Traceback" not in result.stderr


def test_production_without_redis_fails_the_rate_limit_check() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "REDIS_URL"}
    result = _manage("check", "--deploy", REDIS_URL="", **env)
    assert result.returncode != 0
    assert "django_ratelimit.E003" in result.stderr + result.stdout
