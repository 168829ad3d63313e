"""One canonical username (accounts/usernames.py) at every door: registration, /auth/token (JSON
and form), the admin login and the per-username rate limit, compared exactly on both databases.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlencode

import pytest
from django.apps import apps as global_apps
from django.test import Client

from accounts.models import SecurityEvent, User
from accounts.usernames import (
    MAX_USERNAME_CHARS,
    InvalidUsername,
    canonical_username,
    registrable_username,
)
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.logins import TOKEN, login

REGISTER = "/api/v1/auth/register"
STRONG = "Sup3r-secret-passphrase!"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Alice", "alice"),
        ("ＡＬＩＣＥ", "alice"),  # fullwidth
        ("  alice ", "alice"),
        ("Straße", "strasse"),
        ("ſam", "sam"),  # long s
        ("\u212aate", "kate"),  # Kelvin sign
        ("olıvia", "olıvia"),  # dotless i is its own letter, not "i"
        ("e\u0301mile", "émile"),  # composed by NFKC
    ],
)
def test_canonical_form(raw: str, canonical: str) -> None:
    assert canonical_username(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    ["alice\x00x", "al\u200bice", "al\ud800", "al\U000e0080", "\ue000x", "", "   ", "a" * 151],
)
def test_names_without_a_canonical_form_are_refused(raw: str) -> None:
    with pytest.raises(InvalidUsername):
        canonical_username(raw)


def test_length_is_counted_after_normalisation() -> None:
    assert len(canonical_username("\ufdfa" * 8)) == 8 * 18 - 0 == 144
    with pytest.raises(InvalidUsername, match="150"):
        canonical_username("\ufdfa" * 9)
    with pytest.raises(InvalidUsername, match="letters, digits"):
        registrable_username("\ufdfa")  # NFKC turns it into words with spaces
    assert len(canonical_username("e\u0301" * MAX_USERNAME_CHARS)) == MAX_USERNAME_CHARS


def _form_login(username: str, password: str = DEFAULT_PASSWORD, ip: str = "10.9.0.1") -> Any:
    return Client().post(
        TOKEN,
        urlencode({"grant_type": "password", "username": username, "password": password}),
        content_type="application/x-www-form-urlencoded",
        REMOTE_ADDR=ip,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["alice", "ALICE", "ＡＬＩＣＥ", " Alice "])
def test_every_spelling_of_a_name_signs_in(customer: User, spelling: str) -> None:
    assert login(spelling).status_code == 200
    assert _form_login(spelling).status_code == 200


@pytest.mark.django_db
def test_long_s_spelling_signs_in_as_the_same_account() -> None:
    UserFactory(username="sam")

    assert login("ſam").status_code == 200
    assert login("ſAM").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["olıvia", "OLIVİA"])
def test_dotless_and_dotted_i_are_other_names(operator: User, spelling: str) -> None:
    # PostgreSQL's UPPER() folds ı to I: with iexact these signed in as "olivia".
    response = login(spelling)

    assert response.status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["alice\x00", "alice\x00x", "alice\x00" + "x" * 200])
def test_nul_spellings_never_reach_an_account(customer: User, spelling: str) -> None:
    # On SQLite the lookup stopped at the NUL and signed in as alice with a fresh budget.
    assert login(spelling).status_code == 422
    assert _form_login(spelling).status_code == 422


@pytest.mark.django_db
def test_all_spellings_share_the_accounts_budget(settings: Any) -> None:
    settings.RATE_LIMIT_LOGIN = "4/m"
    UserFactory(username="sam")
    spellings = ["sam", "SAM", "ſam", "ｓａｍ"]
    for n, spelling in enumerate(spellings):
        assert login(spelling, "wrong", ip=f"10.9.1.{n}").status_code == 401

    # Every spelling, from a fresh IP, with the right password: the account's budget is spent.
    for n, spelling in enumerate([*spellings, "Sam"]):
        assert login(spelling, ip=f"10.9.2.{n}").status_code == 429
        assert _form_login(spelling, ip=f"10.9.3.{n}").status_code == 429


@pytest.mark.django_db
def test_nul_spelling_cannot_dodge_the_budget(settings: Any, customer: User) -> None:
    settings.RATE_LIMIT_LOGIN = "2/m"
    for n in range(2):
        assert login("alice", "wrong", ip=f"10.9.4.{n}").status_code == 401

    assert login("alice\x00x", ip="10.9.4.9").status_code == 422
    assert login("alice", ip="10.9.4.10").status_code == 429


@pytest.mark.django_db
def test_admin_login_spends_the_same_budget(settings: Any, superuser: User) -> None:
    settings.RATE_LIMIT_LOGIN = "2/m"
    admin = Client()
    for n in range(2):
        response = admin.post(
            "/admin/login/",
            {"username": "ＲＯＯＴ", "password": "wrong"},
            REMOTE_ADDR=f"10.9.5.{n}",
        )
        assert response.status_code == 200  # the form again

    assert login("root", ip="10.9.5.9").status_code == 429


@pytest.mark.django_db
def test_admin_login_accepts_any_spelling(superuser: User) -> None:
    admin = Client()
    response = admin.post("/admin/login/", {"username": "ＲＯＯＴ", "password": DEFAULT_PASSWORD})

    assert response.status_code == 302


# --- Registration ---------------------------------------------------------------------------


def _register(username: str) -> Any:
    return Client().post(
        REGISTER,
        {"username": username, "password": STRONG, "email": "new@example.com"},
        content_type="application/json",
    )


@pytest.mark.django_db
def test_registration_stores_the_canonical_form_and_it_signs_in() -> None:
    response = _register("ＭａｒｉｅＳ")

    assert response.status_code == 201
    assert response.json()["username"] == "maries"
    assert User.objects.get().username == "maries"
    assert login("MarieS", STRONG).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "username",
    ["\ufdfa" * 9, "\ufdfa", "x\x00y", "x\u200by", "a" * 151, "e\u0301" * 151, "a b"],
)
def test_names_that_could_never_sign_in_are_422(username: str) -> None:
    response = _register(username)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "payload", "username"]
    assert User.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["ALICE", "ａｌｉｃｅ", "Alice"])
def test_another_spelling_of_a_taken_name_is_409(customer: User, spelling: str) -> None:
    assert _register(spelling).status_code == 409
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_every_201_can_sign_in() -> None:
    for name in ["plain", "ＦＵＬＬ", "Straße", "ſtar", "e\u0301" * 150]:
        response = _register(name)
        assert response.status_code == 201, name
        assert login(name, STRONG).status_code == 200, name


@pytest.mark.django_db
def test_failed_sign_in_event_stores_the_canonical_name(customer: User) -> None:
    login("ＡＬＩＣＥ", "wrong")

    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.LOGIN_FAILED)
    assert event.detail == {"username": "alice"}


# --- The migration of existing rows ------------------------------------------------------------


@pytest.mark.django_db
def test_migration_canonicalises_rows_and_settles_collisions() -> None:
    # Rows as the old code could store them (save() now folds, so write around it).
    rows = {}
    for name in ["Straße", "strasse", "ALICE", "ſam", "Sam", "\ufdfa" * 9]:
        user = UserFactory(username=f"tmp{len(rows)}")
        User.objects.filter(pk=user.pk).update(username=name)
        rows[name] = user.pk
    migration = importlib.import_module("accounts.migrations.0003_canonical_usernames")

    migration.canonicalise_usernames(global_apps, None)

    names = dict(User.objects.values_list("pk", "username"))
    assert names[rows["strasse"]] == "strasse"  # already canonical: keeps it
    assert names[rows["Straße"]] == f"strasse-{rows['Straße']}"
    assert names[rows["ALICE"]] == "alice"
    assert names[rows["ſam"]] == "sam"  # the older row wins
    assert names[rows["Sam"]] == f"sam-{rows['Sam']}"
    assert names[rows["\ufdfa" * 9]] == "\ufdfa" * 9  # no canonical form: left for an operator
