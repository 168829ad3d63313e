"""The access-token lookup of every authenticated request as one fixed SQL statement.

Building and compiling the ORM query for "the user, and is this token revoked" cost more CPU per
request than running it (docs/benchmarks.md: "Where the CPU goes"). The statement is built once
per process from the models' own table and column names, and the row becomes a `User` exactly as
the ORM would load it (`instance_from_row`).

Activity, revocation and the password fingerprint stay for the caller to check
(`accounts.auth.principal_from_access_token`); this module only reads.

A route that needs another read beside the caller's user may have it travel in the same
statement (`ReadAlong`): one round trip for both, which on this machine kind is the currency of
a request's cost (docs/benchmarks.md). The message route reads the agent's context that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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


@dataclass
class ReadAlong:
    """Another read that travels in the token lookup's statement: a SELECT of the caller's
    (every value bound, `params` in order), whose rows come back in `rows` once the lookup ran
    (`order_by`: the name of one of its columns that orders them; its own ORDER BY would not
    survive the join). A read that finds nothing comes back as one row of NULLs; `rows` stays
    None when the user was not found. What the rows mean, and whom they may be shown to, is
    the caller's: the lookup only carries them."""

    sql: str
    params: Sequence[Any]
    order_by: str
    rows: list[tuple[Any, ...]] | None = field(default=None, init=False)


@cache
def _user_and_along_sql(along_sql: str, order_by: str) -> str:
    # The user row LEFT JOINed to the other read: every row carries the user's columns, and a
    # read that found nothing still yields the user's row (its columns NULL).
    return (
        f"SELECT * FROM ({_user_sql()}) token_user "  # noqa: S608 - fixed statements
        f"LEFT JOIN ({along_sql}) read_along ON 1 = 1 ORDER BY read_along.{order_by}"
    )


def user_with_revocation(
    *,
    user_id: int,
    jti: str,
    family: str | None = None,
    along: ReadAlong | None = None,
    using: str = "default",
) -> tuple[User, bool] | None:
    """The user row `user_id` as a model instance (every concrete field, exactly as
    `User.objects.get` loads it) and whether access token `jti` or its refresh family `family`
    is revoked; None when no such user. One statement, which also runs `along` when given
    (its rows are left in `along.rows`)."""
    if not is_possible_id(user_id):
        return None
    connection = connections[using]
    params: list[Any] = [jti, family, user_id]
    sql = _user_sql()
    if along is not None:
        sql = _user_and_along_sql(along.sql, along.order_by)
        params += along.params
    with prepared_cursor(using) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return None
    # The user's columns, then the revocation flag, then the other read's columns.
    width = len(User._meta.concrete_fields) + 1
    if along is not None:
        along.rows = [row[width:] for row in rows]
    row = rows[0]
    return instance_from_row(User, list(row[: width - 1]), connection, using), bool(row[width - 1])
