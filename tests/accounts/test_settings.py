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
GOOD_FERNET = "cGFybGV5LWZpZWxkLWVuY3J5cHRpb24ta2V5LTAwMDE="  # URL-safe base64 of 32 bytes


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DEBUG",
            "SECRET_KEY",
            "JWT_SIGNING_KEY",
            "JWT_SIGNING_KEYS",
            "FIELD_ENCRYPTION_KEYS",
            "STAFF_MFA_REQUIRED",
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
    "FIELD_ENCRYPTION_KEYS": GOOD_FERNET,
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
        ({"FIELD_ENCRYPTION_KEYS": ""}, "FIELD_ENCRYPTION_KEYS"),
        ({"FIELD_ENCRYPTION_KEYS": "not-a-fernet-key"}, "FIELD_ENCRYPTION_KEYS"),
        ({"FIELD_ENCRYPTION_KEYS": f"{GOOD_FERNET},short"}, "FIELD_ENCRYPTION_KEYS"),
        ({"JWT_SIGNING_KEYS": f"{GOOD_JWT},too-short-key"}, "JWT_SIGNING_KEYS"),
        ({"JWT_SIGNING_KEYS": f"{GOOD_JWT},{GOOD_JWT}"}, "JWT_SIGNING_KEYS"),
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


def _setting(name: str, **env: str) -> str:
    code = f"from django.conf import settings; print('value:', settings.{name})"
    result = _manage("shell", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("value: ")]
    return line.removeprefix("value: ")


def test_staff_mfa_is_required_in_production_and_optional_in_debug() -> None:
    assert _setting("STAFF_MFA_REQUIRED", **PRODUCTION) == "True"
    assert _setting("STAFF_MFA_REQUIRED", **{**PRODUCTION, "STAFF_MFA_REQUIRED": "0"}) == "False"
    assert _setting("STAFF_MFA_REQUIRED", DEBUG="1") == "False"
    assert _setting("STAFF_MFA_REQUIRED", DEBUG="1", STAFF_MFA_REQUIRED="1") == "True"


def test_jwt_signing_keys_first_signs_and_a_lone_key_still_works() -> None:
    second = "k" * 40
    keys = _setting(
        "JWT_SIGNING_KEYS", **{**PRODUCTION, "JWT_SIGNING_KEYS": f"{second},{GOOD_JWT}"}
    )
    assert keys == repr([second, GOOD_JWT])
    signing = _setting(
        "JWT_SIGNING_KEY", **{**PRODUCTION, "JWT_SIGNING_KEYS": f"{second},{GOOD_JWT}"}
    )
    assert signing == second
    assert _setting("JWT_SIGNING_KEYS", **PRODUCTION) == repr([GOOD_JWT])


def test_field_encryption_key_is_derived_from_the_secret_key_in_debug() -> None:
    first = _setting("FIELD_ENCRYPTION_KEYS", DEBUG="1", SECRET_KEY=GOOD_SECRET)
    again = _setting("FIELD_ENCRYPTION_KEYS", DEBUG="1", SECRET_KEY=GOOD_SECRET)
    other = _setting("FIELD_ENCRYPTION_KEYS", DEBUG="1", SECRET_KEY=GOOD_SECRET + "x")
    assert first == again != other
    assert GOOD_SECRET not in first
