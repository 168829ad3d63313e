"""Hostile input at every door, generated from the served OpenAPI schema.

Every operation the API serves is sent every class of malformed input SPEC §3 names (deep JSON,
field floods, non-UTF-8 forms, query floods, NUL / lone surrogates / unassigned characters in
each string field, ids and cursors out of range, wrong types, very long strings) with a
credential its policy accepts. Each must answer a 4xx (never 5xx), write nothing, and log no
error. Operations and fields come from `config.api.api.get_openapi_schema()`, so a new route
or a new field is attacked without editing this file.

"Nothing written" compares a checksum of every table before and after, except
`accounts_securityevent` (refusals are recorded there on purpose, bounded per caller) and the
refresh-token bookkeeping a sign-in writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.test import Client

from accounts.models import SecurityEvent, User
from config.api import api
from tests.conftest import issue_access_token

SCHEMA = api.get_openapi_schema()
COMPONENTS = SCHEMA.get("components", {}).get("schemas", {})
METHODS = ("get", "post", "put", "patch", "delete")
# Statuses a refusal may have; a route's own 4xx (401/403/404/409/429) are refusals as well.
REFUSALS = {400, 401, 403, 404, 405, 409, 413, 415, 422, 429}
WRITES = ("POST", "PUT", "PATCH", "DELETE")
# Tables a refused request may legitimately touch.
UNCHECKED_TABLES = {SecurityEvent._meta.db_table}

pytestmark = pytest.mark.django_db


# --- The operations, as served ----------------------------------------------------------------


class Operation:
    def __init__(self, method: str, path: str, spec: dict[str, Any]) -> None:
        self.method = method.upper()
        self.path = path
        self.spec = spec
        self.parameters = spec.get("parameters", [])
        content = spec.get("requestBody", {}).get("content", {})
        self.body_schema = content.get("application/json", {}).get("schema")
        self.takes_form = "application/x-www-form-urlencoded" in content
        self.authenticated = bool(spec.get("security"))

    def __repr__(self) -> str:
        return f"{self.method} {self.path}"

    def params(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.parameters if p["in"] == where]

    def url(self, path_values: dict[str, Any] | None = None) -> str:
        values = {p["name"]: 1 for p in self.params("path")} | (path_values or {})
        return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), self.path)


OPERATIONS = [
    Operation(method, path, spec)
    for path, methods in SCHEMA["paths"].items()
    for method, spec in methods.items()
    if method in METHODS
]


def ops(predicate: Callable[[Operation], bool] = lambda op: True) -> list[Any]:
    return [pytest.param(op, id=repr(op)) for op in OPERATIONS if predicate(op)]


# --- Valid-shaped bodies from the schema, and every string inside them ------------------------


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root.get("$defs", {}).get(name) or COMPONENTS[name]
    return schema


def example(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """A small value of the schema's shape (not necessarily accepted by the service)."""
    schema = resolve(schema, root)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if resolve(s, root).get("type") != "null"]
            return example(options[0], root)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        return {
            name: example(prop, root)
            for name, prop in schema.get("properties", {}).items()
            if name in schema.get("required", []) or _is_text(prop, root)
        }
    if kind == "array":
        return [example(schema.get("items", {}), root)] * max(1, schema.get("minItems", 1))
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return 1
    if kind == "boolean":
        return True
    if schema.get("format") == "email":
        return "someone@example.com"
    if schema.get("format") == "date-time":
        return "2030-01-01T00:00:00Z"
    return "x" * max(1, schema.get("minLength", 1))


def _is_text(schema: dict[str, Any], root: dict[str, Any]) -> bool:
    """A string, or an optional one (anyOf string/null): fields worth attacking even when
    not required."""
    schema = resolve(schema, root)
    options = schema.get("anyOf", [schema])
    return any(resolve(option, root).get("type") == "string" for option in options)


def string_slots(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every string in a body example."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_slots(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_slots(item, (*path, index))


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


def body_example(op: Operation) -> dict[str, Any]:
    assert op.body_schema is not None
    return example(op.body_schema, op.body_schema)  # type: ignore[no-any-return]


# --- Sending, and what must hold afterwards ----------------------------------------------------


def _table_checksums() -> dict[str, str]:
    sums = {}
    for model in apps.get_models(include_auto_created=True):
        table = model._meta.db_table
        if table in UNCHECKED_TABLES or not model._meta.managed:
            continue
        rows = list(model._default_manager.order_by("pk").values_list())
        sums[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return sums


@pytest.fixture
def attacker(superuser: User, settings: Any, caplog: Any) -> Iterator[Callable[..., Any]]:
    """send(op, ...) with a superuser's token (every policy admits it) when the route needs
    one; after the test, the database must be as it was and the log free of errors."""
    settings.RATELIMIT_ENABLE = False  # reach the parsing and validation, not the 429
    caplog.set_level(logging.WARNING)
    anonymous = Client()
    state: dict[str, Any] = {"client": None}
    statuses: list[tuple[str, int]] = []

    def fresh_credentials() -> None:
        # A success may have revoked the token (POST /auth/revoke) or written rows: start
        # again from a new token and a new baseline, so every refusal is still checked.
        token = issue_access_token(superuser)
        state["client"] = Client(headers={"Authorization": f"Bearer {token}"})
        state["before"] = _table_checksums()

    fresh_credentials()

    def send(
        op: Operation,
        *,
        path_values: dict[str, Any] | None = None,
        query: str = "",
        data: Any = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        allow_success: bool = False,
        as_anonymous: bool = False,
    ) -> Any:
        url = op.url(path_values) + (f"?{query}" if query else "")
        sender = state["client"] if op.authenticated and not as_anonymous else anonymous
        if op.method == "GET" and data is None:
            response = sender.get(url, headers=headers)
        else:
            response = sender.generic(
                op.method, url, data or b"", content_type=content_type, headers=headers
            )
        statuses.append((url[:120], response.status_code))
        assert response.status_code < 500, (url[:200], response.content[:300])
        if not allow_success:
            assert response.status_code in REFUSALS, (url[:200], response.content[:300])
        elif response.status_code < 400 and op.method in WRITES:
            fresh_credentials()
        return response

    yield send

    assert _table_checksums() == state["before"], statuses
    errors = [
        f"{r.name}: {r.getMessage()[:200]}"
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name != "parley.security"
    ]
    assert errors == []


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode()


# --- The classes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ops(lambda op: op.method in WRITES))
def test_deep_json(op: Operation, attacker: Callable[..., Any]) -> None:
    for depth in (33, 5_000, 100_000):
        attacker(op, data="[" * depth + "]" * depth)
        attacker(op, data='{"a":' * depth + "1" + "}" * depth)


@pytest.mark.parametrize("op", ops(lambda op: op.method in WRITES))
def test_form_flood(op: Operation, attacker: Callable[..., Any]) -> None:
    for count in (101, 1_200):
        body = "&".join(f"f{i}=1" for i in range(count))
        attacker(op, data=body, content_type="application/x-www-form-urlencoded")
        parts = "".join(
            f'--x\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\n1\r\n' for i in range(count)
        )
        attacker(op, data=parts + "--x--\r\n", content_type="multipart/form-data; boundary=x")


@pytest.mark.parametrize("op", ops(lambda op: op.method in WRITES))
def test_non_utf8_form(op: Operation, attacker: Callable[..., Any]) -> None:
    body = "grant_type=password&username=al%E9&password=p%E9&refresh_token=%E9"
    for charset in ("latin-1", "utf-16", "no-such-charset"):
        attacker(
            op, data=body, content_type=f"application/x-www-form-urlencoded; charset={charset}"
        )
    attacker(op, data=b"\xff\xfe\x00{", content_type="application/json")


@pytest.mark.parametrize("op", ops(lambda op: op.method in WRITES))
def test_broken_multipart(op: Operation, attacker: Callable[..., Any]) -> None:
    for content_type, body in [
        ("multipart/form-data", b"abc"),  # no boundary
        ("multipart/form-data; boundary=", b"abc"),
        ("multipart/form-data; boundary=\x00", b"--\x00\r\n"),
    ]:
        attacker(op, data=body, content_type=content_type)


@pytest.mark.parametrize("op", ops())
def test_query_flood(op: Operation, attacker: Callable[..., Any]) -> None:
    # Every route, also one that reads no query parameter: the flood is refused before it runs.
    for count in (101, 1_200):
        query = "&".join(f"q{i}=1" for i in range(count))
        response = attacker(op, query=query)
        assert response.status_code == 400
        assert response.json() == {"detail": "More than 100 form or query fields"}
    attacker(op, query="&".join(f"q{i}=1" for i in range(100)), allow_success=True)


BAD_TEXT = {
    "nul": "a\x00b",
    "control": "a\x1b[31m",
    "lone-surrogate": "a\ud800b",
    "low-surrogate": "\udfff",
    "unassigned": "a\U000e0080",
    "noncharacter": "a\uffff",
}


@pytest.mark.parametrize(
    "op", ops(lambda op: op.body_schema is not None and any(string_slots(body_example(op))))
)
def test_unstorable_text_in_every_body_string(op: Operation, attacker: Callable[..., Any]) -> None:
    base = body_example(op)
    slots = list(string_slots(base))
    for slot in slots:
        for bad in BAD_TEXT.values():
            response = attacker(op, data=_json(replaced(base, slot, bad)))
            assert response.status_code in {400, 401, 403, 422}, (slot, bad)
    if op.takes_form:  # the same rule for form fields
        for slot in slots:
            form = {**base, "grant_type": "password", slot[0]: BAD_TEXT["nul"]}
            attacker(op, data=urlencode(form), content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("op", ops(lambda op: any(p["in"] == "query" for p in op.parameters)))
def test_unstorable_text_in_every_query_parameter(
    op: Operation, attacker: Callable[..., Any]
) -> None:
    for param in op.params("query"):
        for bad in BAD_TEXT.values():
            if any("\ud800" <= char <= "\udfff" for char in bad):
                continue  # a query string is bytes: it cannot carry a lone surrogate
            response = attacker(op, query=urlencode({param["name"]: bad}))
            assert response.status_code in {400, 422}, (param["name"], bad)


@pytest.mark.parametrize(
    "op", ops(lambda op: any(p["in"] == "header" for p in op.parameters) and op.body_schema)
)
def test_unstorable_text_in_headers(op: Operation, attacker: Callable[..., Any]) -> None:
    for param in op.params("header"):
        for bad in ("a\x00b", "a\x01", "\x7f"):
            attacker(op, data=_json(body_example(op)), headers={param["name"]: bad})


HOSTILE_CREDENTIALS = [
    {"X-API-Key": "prl_ab\x00c_secret"},
    {"X-API-Key": "prl_ab\udfffc_secret"},
    {"X-API-Key": "prl_" + "é" * 10 + "_x"},
    {"X-API-Key": "prl_" + "a" * 5000 + "_x"},
    {"Authorization": "Bearer a\x00b"},
    {"Authorization": "Bearer " + "a" * 50_000},
    {"Authorization": "Bearer \udfff"},
    {"Authorization": "Basic \x00"},
    {"Authorization": "Bearer e30.e30.", "X-API-Key": "\x00"},
]


@pytest.mark.parametrize("op", ops(lambda op: op.authenticated))
def test_hostile_credentials(op: Operation, attacker: Callable[..., Any]) -> None:
    data = _json(body_example(op)) if op.body_schema else None
    for headers in HOSTILE_CREDENTIALS:
        response = attacker(op, data=data, headers=headers, as_anonymous=True)
        assert response.status_code == 401, headers


BAD_IDS = [2**63, 2**63 - 1, 2**64, 10**40, -1, -(2**63) - 1, 0, "abc", "1.5", "1e3", "%00", "١"]


@pytest.mark.parametrize("op", ops(lambda op: bool(op.params("path"))))
def test_ids_out_of_range_in_the_path(op: Operation, attacker: Callable[..., Any]) -> None:
    data = _json(body_example(op)) if op.body_schema else None
    for param in op.params("path"):
        for bad in BAD_IDS:
            # A read of an id that names no row may answer an empty page (e.g. a staff member
            # listing a customer that does not exist); it still writes nothing.
            attacker(op, path_values={param["name"]: bad}, data=data, allow_success=True)


@pytest.mark.parametrize("op", ops(lambda op: op.body_schema is not None))
def test_ids_out_of_range_in_the_body(op: Operation, attacker: Callable[..., Any]) -> None:
    base = body_example(op)
    schema = resolve(op.body_schema, op.body_schema)
    id_fields = [
        name
        for name, prop in schema.get("properties", {}).items()
        if name.endswith("_id") and name in base
    ]
    for name in id_fields:
        for bad in (2**63, 2**64, 10**40, -1, -(2**63) - 1):
            attacker(op, data=_json({**base, name: bad}))


def _cursor(first: Any, last_id: Any = 1) -> str:
    return base64.urlsafe_b64encode(json.dumps([first, last_id]).encode()).decode().rstrip("=")


BAD_CURSORS = [
    _cursor("9999-12-31T23:59:59-23:59"),
    _cursor("0001-01-01T00:00:00+23:59"),
    _cursor("2026-01-01T00:00:00+00:00", 2**63),
    _cursor("2026-01-01T00:00:00+00:00", -1),
    _cursor({"a": 1}, 1),
    _cursor("2026-01\x00-01T00:00:00+00:00", 1),
    _cursor(2**70, 1),
    "!!!",
    "A" * 200,
    "W10",  # "[]"
]


@pytest.mark.parametrize("op", ops(lambda op: any(p["name"] == "cursor" for p in op.parameters)))
def test_cursors_out_of_range(op: Operation, attacker: Callable[..., Any]) -> None:
    for cursor in BAD_CURSORS:
        response = attacker(op, query=urlencode({"cursor": cursor}))
        assert response.status_code == 400
        assert response.json() == {"detail": "Invalid cursor"}


WRONG_TYPES = [None, True, [], {}, {"$gt": ""}, 1.5, 10**40, "1" * 5000, [[[[["x"]]]]]]


@pytest.mark.parametrize("op", ops(lambda op: op.body_schema is not None))
def test_wrong_types_in_every_field(op: Operation, attacker: Callable[..., Any]) -> None:
    base = body_example(op)
    for name in base:
        for wrong in WRONG_TYPES:
            if wrong is None and name not in resolve(op.body_schema, op.body_schema).get(
                "required", []
            ):
                continue  # null is a valid "absent" for optional fields
            attacker(op, data=_json({**base, name: wrong}))
    for body in ([], "string", 1, None, [base]):
        attacker(op, data=_json(body))
    attacker(op, data=b'{"a": NaN, "b": Infinity}')
    attacker(op, data=_json({**base, "unexpected": 1}))


@pytest.mark.parametrize("op", ops(lambda op: bool(op.params("query"))))
def test_wrong_types_in_query_parameters(op: Operation, attacker: Callable[..., Any]) -> None:
    for param in op.params("query"):
        for wrong in ("", "abc", "-1", "1e400", "9" * 400, "nan", "[]"):
            attacker(op, query=urlencode({param["name"]: wrong}), allow_success=True)
        attacker(
            op, query=urlencode([(param["name"], "1"), (param["name"], "2")]), allow_success=True
        )


UNICODE_EDGES = [
    "\u202eevil",  # right-to-left override
    "a\u200db",  # zero-width joiner
    "e\u0301" * 50,  # combining marks
    "\ufdfa" * 9,  # grows under NFKC
    "👩‍👩‍👧‍👦" * 10,
    "\U0010fffd",  # private use, plane 16
    " ",
    "\u3000",  # ideographic space
]


@pytest.mark.parametrize("op", ops(lambda op: op.body_schema is not None))
def test_unicode_edges_and_long_strings(op: Operation, attacker: Callable[..., Any]) -> None:
    """Valid-but-odd text may be accepted; whatever the answer, never a 5xx, and a refusal
    writes nothing. Over-long strings are refused (422, or 413 past the body limit)."""
    base = body_example(op)
    for slot in string_slots(base):
        for edge in UNICODE_EDGES:
            attacker(op, data=_json(replaced(base, slot, edge)), allow_success=True)
        for size in (5_000, 70_000):
            response = attacker(op, data=_json(replaced(base, slot, "x" * size)))
            assert response.status_code in {401, 403, 413, 422}, (slot, size)


# --- Every door uses the shared types, so the classes above hold for routes added later --------


def _declared_params() -> Iterator[tuple[str, str, Any]]:
    for path, operation in api.iter_operations():
        for model in operation.models:
            for name, field in model.model_fields.items():
                yield f"{path} {name}", model.__name__, field


def test_every_request_schema_applies_the_text_rule() -> None:
    from pydantic import BaseModel

    from core.schemas import CheckedSchema

    unchecked = [
        where
        for where, _source, field in _declared_params()
        if isinstance(field.annotation, type)
        and issubclass(field.annotation, BaseModel)
        and not issubclass(field.annotation, CheckedSchema)
    ]
    assert unchecked == []


def test_every_path_id_is_a_path_id() -> None:
    from core.ids import PathId

    expected = PathId.__metadata__  # type: ignore[attr-defined]
    wrong = [
        where
        for where, source, field in _declared_params()
        if source == "PathParams" and field.annotation is int and tuple(field.metadata) != expected
    ]
    assert wrong == []
