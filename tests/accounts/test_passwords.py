from django.conf import settings


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
