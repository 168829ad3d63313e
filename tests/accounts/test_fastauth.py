"""accounts.fastauth loads the token's user exactly as the ORM would and sees both deny-lists
(the access token's jti, its refresh family) in the one statement."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import fastauth
from accounts.models import RevokedAccessToken, RevokedTokenFamily, User
from core.ids import MAX_ID
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


# --- user_with_revocation ----------------------------------------------------------------------


def test_user_row_equals_the_orm_one(customer: User) -> None:
    customer.last_login = timezone.now() - timedelta(days=1)
    customer.save()
    found = fastauth.user_with_revocation(user_id=customer.pk, jti="never-revoked")

    assert found is not None
    user, revoked = found
    expected = User.objects.get(pk=customer.pk)
    for field in User._meta.concrete_fields:
        assert getattr(user, field.attname) == getattr(expected, field.attname), field.name
    assert isinstance(user.is_active, bool)
    assert user.last_login == expected.last_login
    assert user._state.adding is False
    assert revoked is False


def test_revoked_jti(customer: User, other_customer: User) -> None:
    RevokedAccessToken.objects.create(
        jti="abc123", user=customer, expires_at=timezone.now() + timedelta(hours=1)
    )
    found = fastauth.user_with_revocation(user_id=customer.pk, jti="abc123")
    assert found is not None
    assert found[1] is True
    # The deny-list is per token, not per user.
    other = fastauth.user_with_revocation(user_id=other_customer.pk, jti="abc123")
    assert other is not None
    assert other[1] is True
    assert fastauth.user_with_revocation(user_id=customer.pk, jti="abc124") == (
        customer,
        False,
    )


@pytest.mark.parametrize("user_id", [0, -5, MAX_ID + 1])
def test_impossible_user_id(user_id: int) -> None:
    assert fastauth.user_with_revocation(user_id=user_id, jti="x") is None


def test_missing_and_inactive_users(customer: User) -> None:
    missing_id = User.objects.order_by("-pk").values_list("pk", flat=True).first() + 1000
    assert fastauth.user_with_revocation(user_id=missing_id, jti="x") is None
    inactive = UserFactory(username="carol", is_active=False)
    found = fastauth.user_with_revocation(user_id=inactive.pk, jti="x")
    assert found is not None
    assert found[0].is_active is False


def test_user_lookup_is_one_statement(customer: User) -> None:
    with CaptureQueriesContext(connection) as captured:
        fastauth.user_with_revocation(user_id=customer.pk, jti="x")
    assert len(captured.captured_queries) == 1


def test_revoked_family(customer: User) -> None:
    RevokedTokenFamily.objects.create(
        family="fam-1", user=customer, expires_at=timezone.now() + timedelta(days=1)
    )
    found = fastauth.user_with_revocation(user_id=customer.pk, jti="fresh", family="fam-1")
    assert found is not None
    assert found[1] is True
    assert fastauth.user_with_revocation(user_id=customer.pk, jti="fresh", family="fam-2") == (
        customer,
        False,
    )
