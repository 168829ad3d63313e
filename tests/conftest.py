"""Shared fixtures: the four kinds of account and API clients holding their tokens."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import django_ratelimit.core
import pytest
from django.core.cache import cache
from django.test import Client

import accounts.ratelimits
from accounts import services as account_services
from accounts.models import User
from accounts.socket_slots import LOCAL_SLOTS
from core.outages import outages_reset
from messaging import events
from messaging.agent import get_agent
from messaging.events import DomainEvent
from tests.factories import OperatorFactory, SuperuserFactory, UserFactory
from tests.pushes import Pushes

ROOT = Path(__file__).resolve().parents[1]


def _tracked_changes() -> set[str] | None:
    """Tracked files that differ from the last commit, or None outside a git checkout."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {line[3:] for line in status.splitlines()}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_TRACKED] = _tracked_changes()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Tests never change tracked files (a clean clone stays clean after `make test`): files
    they make go to temporary folders or ignored ones (test-output/); the docs' pictures come
    from `make screenshots`."""
    before = session.config.stash.get(_TRACKED, None)
    after = _tracked_changes()
    if before is None or after is None:
        return
    changed = sorted(after - before)
    if changed:
        session.config.get_terminal_writer().line(
            f"\nThe test run changed tracked files: {', '.join(changed)}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_TRACKED = pytest.StashKey[set[str] | None]()


@pytest.fixture(autouse=True)
def _fast_hashing_and_clean_cache(settings: Any) -> Any:
    # Argon2 is the production hasher (asserted in tests/accounts/test_passwords.py); tests
    # that create many users use a fast one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()  # rate-limit counters must not leak between tests
    LOCAL_SLOTS.clear()  # nor websocket slots of the in-process store (Redis's go with the cache)
    get_agent.cache_clear()
    yield
    cache.clear()
    LOCAL_SLOTS.clear()


@pytest.fixture(autouse=True)
def _webhook_queue_in_process(request: pytest.FixtureRequest, settings: Any) -> Any:
    # Tests that drive the webhook pipeline in-process (worker_run_until_idle inside the test's
    # transaction) use the database queue on every run: the Celery backend publishes on COMMIT,
    # which a test transaction never reaches. Tests marked `celery_queue` keep the queue the
    # settings chose (Celery with REDIS_URL) and run real workers (tests/integrations/
    # test_celery_queue.py, the fault and cluster tests).
    if request.node.get_closest_marker("celery_queue") is None:
        settings.WEBHOOK_QUEUE = "database"
        settings.TASKS = {
            "default": {**settings.TASKS["default"], "BACKEND": "django_tasks_db.DatabaseBackend"}
        }


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
    # a test that means to reach the next window advances this clock. The seconds left in the
    # window (RateLimit-Reset, Retry-After) come from the same clock: two requests of a test
    # that straddled a second on the wall clock answered 27 and 26.
    clock = RateLimitClock()
    frozen = SimpleNamespace(time=lambda: clock.now)
    monkeypatch.setattr(django_ratelimit.core, "time", frozen)
    monkeypatch.setattr(accounts.ratelimits, "time", frozen)
    return clock


def _account(factory: type[UserFactory], username: str) -> Any:
    """A fixture: the account `factory` makes under `username` (the name tests sign in with)."""

    @pytest.fixture
    def account(db: Any) -> User:
        return factory(username=username)  # type: ignore[no-any-return]

    account.__doc__ = f"{factory.__name__}(username={username!r})"
    return account


customer = _account(UserFactory, "alice")
other_customer = _account(UserFactory, "bob")
operator = _account(OperatorFactory, "olivia")
superuser = _account(SuperuserFactory, "root")


def issue_access_token(user: User, scopes: set[str] | None = None) -> str:
    return account_services.token_pair_issue(user=user, requested_scopes=scopes).access_token


@pytest.fixture
def client_for() -> Callable[..., Client]:
    """client_for(user, scopes=None) → a test client sending that user's bearer token."""

    def make(user: User, scopes: set[str] | None = None) -> Client:
        token = issue_access_token(user, scopes)
        return Client(headers={"Authorization": f"Bearer {token}"})

    return make


def _client_of(user_fixture: str) -> Any:
    """A fixture: a test client holding the token of the user fixture named."""

    @pytest.fixture
    def client(request: pytest.FixtureRequest, client_for: Callable[..., Client]) -> Client:
        return client_for(request.getfixturevalue(user_fixture))

    client.__doc__ = f"A client sending {user_fixture}'s bearer token."
    return client


customer_client = _client_of("customer")
other_client = _client_of("other_customer")
operator_client = _client_of("operator")
superuser_client = _client_of("superuser")


@pytest.fixture
def anonymous_client() -> Client:
    return Client()


@pytest.fixture
def pushed(monkeypatch: pytest.MonkeyPatch) -> Pushes:
    """Every event the services publish while the test runs (messaging.realtime.publish
    replaced). Pushes wait for the commit: run the change inside
    `django_capture_on_commit_callbacks(execute=True)`."""
    pushes = Pushes()
    monkeypatch.setattr("messaging.realtime.publish", pushes.extend)
    return pushes


@pytest.fixture
def recorded_events(monkeypatch: pytest.MonkeyPatch) -> list[DomainEvent]:
    """Every domain event recorded while the test runs, as a sink (the webhook outbox is one)
    receives them. Registered through the public door on a copy of the sink list, which the
    test's end puts back."""
    recorded: list[DomainEvent] = []
    monkeypatch.setattr(events, "_sinks", list(events._sinks))
    events.domain_event_sink_register(recorded.extend)
    return recorded
