"""The access-token lookup of every authenticated request as one fixed SQL statement.

Building and compiling the ORM query for "the user, and is this token revoked" cost more CPU per
request than running it (docs/benchmarks.md: "Where the CPU goes"). The statement is built once
per process from the models' own table and column names, and the row becomes a `User` exactly as
the ORM would load it (`instance_from_row`).

Activity, revocation and the password fingerprint stay for the caller to check
(`accounts.auth.principal_from_access_token`); this module only reads.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connections

from accounts.models import RevokedAccessToken, RevokedTokenFamily, User
from core.fixedsql import column, converters, prepared_cursor, table
from core.ids import is_possible_id


def instance_from_row(model: Any, values: list[Any], connection: Any, using: str) -> Any:
    """A model instance from one row of its concrete columns (in `concrete_fields` order), as
    the ORM would build it: converted values, `_state` of a loaded row."""
    for index, _name, found, col in converters(model, connection):
        for converter in found:
            values[index] = converter(values[index], col, connection)
    return model.from_db(using, [f.attname for f in model._meta.concrete_fields], values)


@cache
def _user_sql() -> str:
    columns = ", ".join(f"u.{f.column}" for f in User._meta.concrete_fields)
    revoked = table(RevokedAccessToken)
    families = table(RevokedTokenFamily)
    # Names from the models, every value bound as a parameter.
    return (
        f"SELECT {columns}, (EXISTS (SELECT 1 FROM {revoked} r "  # noqa: S608
        f"WHERE r.{column(RevokedAccessToken, 'jti')} = %s) "
        f"OR EXISTS (SELECT 1 FROM {families} f "
        f"WHERE f.{column(RevokedTokenFamily, 'family')} = %s)) "
        f"FROM {table(User)} u WHERE u.{User._meta.pk.column} = %s"
    )


def user_with_revocation(
    *, user_id: int, jti: str, family: str | None = None, using: str = "default"
) -> tuple[User, bool] | None:
    """The user row `user_id` as a model instance (every concrete field, exactly as
    `User.objects.get` loads it) and whether access token `jti` or its refresh family `family`
    is revoked; None when no such user. One statement."""
    if not is_possible_id(user_id):
        return None
    connection = connections[using]
    with prepared_cursor(using) as cursor:
        cursor.execute(_user_sql(), [jti, family, user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    return instance_from_row(User, list(row[:-1]), connection, using), bool(row[-1])
