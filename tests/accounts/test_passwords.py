import re
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import User


def test_production_password_hasher_is_argon2() -> None:
    # tests/conftest.py swaps in a fast hasher per test; the configured list is what production
    # uses. The autouse fixture has already replaced settings.PASSWORD_HASHERS here, so read the
    # settings module itself.
    from config import settings as project_settings

    assert project_settings.PASSWORD_HASHERS[0] == (
        "django.contrib.auth.hashers.Argon2PasswordHasher"
    )
    assert settings.AUTH_USER_MODEL == "accounts.User"


def test_argon2_hashes_passwords() -> None:
    from django.contrib.auth.hashers import Argon2PasswordHasher, make_password

    encoded = make_password("lantern-orchard-47", hasher=Argon2PasswordHasher())
    assert encoded.startswith("argon2$argon2id$")


def _register(password: str, username: str = "newcomer") -> Any:
    return Client().post(
        "/api/v1/auth/register",
        {"username": username, "password": password, "email": f"{username}@example.com"},
        content_type="application/json",
    )


def _sign_in(username: str, password: str) -> int:
    return int(
        Client()
        .post(
            "/api/v1/auth/token",
            {"username": username, "password": password},
            content_type="application/json",
        )
        .status_code
    )


@pytest.mark.django_db
def test_long_passphrases_of_any_characters_are_accepted_exactly_as_typed() -> None:
    passphrase = "Ünïcödé tea, 🍵 & a very long passphrase with spaces " * 3  # > 64 characters
    assert len(passphrase) > 64
    assert _register(passphrase).status_code == 201
    assert _sign_in("newcomer", passphrase) == 200
    # Verified as received: no truncation, no case change.
    assert _sign_in("newcomer", passphrase[:64]) == 401
    assert _sign_in("newcomer", passphrase.upper()) == 401
    assert _sign_in("newcomer", passphrase + " ") == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short7!", "too short"),  # under 8 characters
        ("password123", "too common"),  # on the breached/common list
        ("qwertyuiop", "too common"),
        ("12345678901234", "entirely numeric"),
        ("my-Parley-account-2026", "too easy to guess here"),  # a context word
    ],
)
def test_weak_and_context_passwords_are_refused(password: str, rule: str) -> None:
    response = _register(password)
    assert response.status_code == 422
    assert rule in response.json()["detail"][0]["msg"]
    assert not User.objects.filter(username="newcomer").exists()


@pytest.mark.django_db
def test_password_fields_are_masked_and_allow_password_managers() -> None:
    for url in ("/admin/login/", "/"):
        html = Client().get(url).content.decode()
        fields = re.findall(r"<input[^>]*>", html)
        password_fields = [f for f in fields if 'name="password"' in f or 'id="password"' in f]
        assert password_fields, url
        for field in password_fields:
            assert 'type="password"' in field
            assert 'autocomplete="off"' not in field
        assert "onpaste" not in html.lower()
