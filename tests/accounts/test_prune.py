from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.models import RevokedAccessToken, User
from messaging.models import IdempotencyRecord


@pytest.mark.django_db
def test_prune_expired_removes_only_expired_rows(customer: User) -> None:
    past = timezone.now() - timedelta(days=2)
    future = timezone.now() + timedelta(hours=1)
    RevokedAccessToken.objects.create(jti="old", user=customer, expires_at=past)
    RevokedAccessToken.objects.create(jti="live", user=customer, expires_at=future)
    OutstandingToken.objects.create(user=customer, jti="o1", token="-", expires_at=past)
    OutstandingToken.objects.create(user=customer, jti="o2", token="-", expires_at=future)
    IdempotencyRecord.objects.create(user=customer, key="old", fingerprint="f", created_at=past)
    IdempotencyRecord.objects.create(user=customer, key="new", fingerprint="f")
    out = StringIO()
    call_command("prune_expired", stdout=out)
    assert out.getvalue().strip() == (
        "Pruned 1 idempotency record(s) and 2 token row(s); 0 security event(s), "
        "0 webhook history row(s), 0 conversation(s) past retention."
    )
    assert list(RevokedAccessToken.objects.values_list("jti", flat=True)) == ["live"]
    assert list(OutstandingToken.objects.values_list("jti", flat=True)) == ["o2"]
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.django_db
def test_seed_demo_creates_the_spec_accounts(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = True
    settings.DEMO_PASSWORD = "demo-password-for-tests"
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())  # idempotent
    users = {u.username: u for u in User.objects.all()}
    assert set(users) == {"alice", "bob", "olivia", "root"}
    assert (users["olivia"].is_staff, users["olivia"].is_superuser) == (True, False)
    assert (users["root"].is_staff, users["root"].is_superuser) == (True, True)
    assert not users["alice"].is_staff
    assert users["alice"].check_password("demo-password-for-tests")
    assert users["olivia"].groups.filter(name="Operators").exists()


@pytest.mark.django_db
def test_seed_demo_does_nothing_in_production(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = False
    call_command("seed_demo", stdout=StringIO())
    assert User.objects.count() == 0
