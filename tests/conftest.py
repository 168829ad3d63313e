"""Shared fixtures: the four kinds of account and API clients holding their tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import django_ratelimit.core
import pytest
from django.core.cache import cache
from django.test import Client

from accounts import services as account_services
from accounts.models import User
from core.outages import outages_reset
from messaging.agent import get_agent
from tests.factories import OperatorFactory, SuperuserFactory, UserFactory


@pytest.fixture(autouse=True)
def _fast_hashing_and_clean_cache(settings: Any) -> Any:
    # Argon2 is the production hasher (asserted in tests/accounts/test_passwords.py); tests
    # that create many users use a fast one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()  # rate-limit counters must not leak between tests
    get_agent.cache_clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _no_outage_left_behind() -> Any:
    # An outage a test provoked (core.outages) is per process: it must not leak into the next
    # test's log or checks, and its watcher thread stops.
    outages_reset()
    yield
    outages_reset()


class RateLimitClock:
    """The instant rate-limit windows are computed from during a test (see the fixture)."""

    def __init__(self) -> None:
        self.now = time.time()

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def rate_limit_clock(monkeypatch: pytest.MonkeyPatch) -> RateLimitClock:
    # Budgets are fixed windows (django-ratelimit): a test that spends "4/m" and then expects 429
    # failed whenever its requests straddled the end of a window (CI, 2026-12-01). Every window
    # is computed from one instant for the length of a test, here and in accounts/ratelimits.py
    # (which reuses django-ratelimit's window function), so budgets are what the test spends;
    # a test that means to reach the next window advances this clock.
    clock = RateLimitClock()
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


@pytest.fixture
def customer(db: Any) -> User:
    return UserFactory(username="alice")


@pytest.fixture
def other_customer(db: Any) -> User:
    return UserFactory(username="bob")


@pytest.fixture
def operator(db: Any) -> User:
    return OperatorFactory(username="olivia")


@pytest.fixture
def superuser(db: Any) -> User:
    return SuperuserFactory(username="root")


def issue_access_token(user: User, scopes: set[str] | None = None) -> str:
    return account_services.token_pair_issue(user=user, requested_scopes=scopes).access_token


@pytest.fixture
def client_for() -> Callable[..., Client]:
    """client_for(user, scopes=None) → a test client sending that user's bearer token."""

    def make(user: User, scopes: set[str] | None = None) -> Client:
        token = issue_access_token(user, scopes)
        return Client(headers={"Authorization": f"Bearer {token}"})

    return make


@pytest.fixture
def customer_client(customer: User, client_for: Callable[..., Client]) -> Client:
    return client_for(customer)


@pytest.fixture
def other_client(other_customer: User, client_for: Callable[..., Client]) -> Client:
    return client_for(other_customer)


@pytest.fixture
def operator_client(operator: User, client_for: Callable[..., Client]) -> Client:
    return client_for(operator)


@pytest.fixture
def superuser_client(superuser: User, client_for: Callable[..., Client]) -> Client:
    return client_for(superuser)


@pytest.fixture
def anonymous_client() -> Client:
    return Client()
