"""On Redis, `rate_limit_enforce` counts in one round trip (a plain INCR; EXPIRE NX once per
window, on its first hit) but in django-ratelimit's own keys and windows: a budget spent
through one is spent for the other (the admin login's door and the API's share budgets)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import caches
from django_ratelimit.core import get_usage
from django_redis.cache import RedisCache

from accounts.ratelimits import rate_limit_enforce
from core.errors import RateLimited
from tests.conftest import RateLimitClock

cache = caches["default"]
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        not isinstance(cache, RedisCache), reason="the one-round-trip count is Redis's"
    ),
]


def _ratelimit_usage(group: str, key: str, rate: str, *, increment: bool) -> dict[str, Any]:
    usage = get_usage(None, group=group, key=lambda _g, _r: key, rate=rate, increment=increment)
    assert usage is not None
    return usage


def test_counts_without_cache_add_or_incr(monkeypatch: pytest.MonkeyPatch) -> None:
    def two_round_trips(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("counted through cache.add / cache.incr")

    monkeypatch.setattr(type(cache), "add", two_round_trips)
    monkeypatch.setattr(type(cache), "incr", two_round_trips)
    usage = rate_limit_enforce(group="test:one-trip", key="u1", rate="5/m")
    assert usage is not None
    assert (usage.limit, usage.remaining) == (5, 4)


def test_shares_the_budget_with_django_ratelimit() -> None:
    group, key, rate = "test:shared", "u2", "3/m"
    _ratelimit_usage(group, key, rate, increment=True)  # django-ratelimit's door
    usage = rate_limit_enforce(group=group, key=key, rate=rate)
    assert usage is not None
    assert usage.remaining == 1
    assert _ratelimit_usage(group, key, rate, increment=False)["count"] == 2
    rate_limit_enforce(group=group, key=key, rate=rate)
    with pytest.raises(RateLimited):
        rate_limit_enforce(group=group, key=key, rate=rate)
    assert _ratelimit_usage(group, key, rate, increment=False)["should_limit"] is True


def test_the_counter_expires_like_django_ratelimits() -> None:
    from django_ratelimit.core import ALL, EXPIRATION_FUDGE, _get_window, _make_cache_key

    rate_limit_enforce(group="test:ttl", key="u3", rate="4/m")
    cache_key = _make_cache_key("test:ttl", _get_window("u3", 60), "4/m", "u3", ALL)
    ttl = cache.ttl(cache_key)
    assert 0 < ttl <= 60 + EXPIRATION_FUDGE
    rate_limit_enforce(group="test:ttl", key="u3", rate="4/m")
    assert cache.get(cache_key) == 2  # the plain integer django-ratelimit reads


def test_only_the_windows_first_hit_sets_the_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    client = cache.client.get_client(write=True)
    expiries: list[tuple[Any, ...]] = []
    real_expire = type(client).expire

    def counted_expire(self: Any, *args: Any, **kwargs: Any) -> Any:
        expiries.append(args)
        return real_expire(self, *args, **kwargs)

    def no_pipeline(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a pipeline per hit")

    monkeypatch.setattr(type(client), "expire", counted_expire)
    monkeypatch.setattr(type(client), "pipeline", no_pipeline)
    for _ in range(3):
        rate_limit_enforce(group="test:expire-once", key="u4", rate="5/m")

    assert len(expiries) == 1


def test_a_counter_that_lost_its_expiry_never_spends_a_later_window(
    rate_limit_clock: RateLimitClock,
) -> None:
    # What the code relies on when the first hit's EXPIRE is lost: the window is in the key.
    from django_ratelimit.core import ALL, _get_window, _make_cache_key

    rate_limit_enforce(group="test:lost", key="u5", rate="2/m")
    rate_limit_enforce(group="test:lost", key="u5", rate="2/m")
    spent = _make_cache_key("test:lost", _get_window("u5", 60), "2/m", "u5", ALL)
    cache.persist(spent)  # as if the EXPIRE never reached Redis
    with pytest.raises(RateLimited):
        rate_limit_enforce(group="test:lost", key="u5", rate="2/m")

    rate_limit_clock.advance(60)
    usage = rate_limit_enforce(group="test:lost", key="u5", rate="2/m")

    assert usage is not None
    assert usage.remaining == 1
    assert cache.ttl(spent) is None  # still there, never read again
