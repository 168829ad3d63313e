"""Shared schemas: error bodies (docs/api.md, Errors), strict request bases and cursor pages."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from django.http import HttpResponse
from ninja import Router, Schema
from ninja.renderers import JSONRenderer
from pydantic import ConfigDict, Field, field_validator

from core.pagination import cursor_check
from core.text import ensure_storable_value

S = TypeVar("S", bound=Schema)


class CheckedSchema(Schema):
    """Every request schema's base: each string it accepts, in any field and at any depth,
    obeys core/text.py's rule (NUL, lone surrogates, unassigned characters → 422), so a new
    schema gets the rule without asking for it."""

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        return ensure_storable_value(value)


class StrictIn(CheckedSchema):
    """Request bodies refuse unknown fields (422) instead of silently ignoring them."""

    model_config = ConfigDict(extra="forbid")


class QueryIn(CheckedSchema):
    """Query parameters (`Query[...]`): checked text; unknown parameters are ignored, as HTTP
    caches and proxies may add their own."""


class PageParams(QueryIn):
    """`?limit=&cursor=` of every keyset-paged list. The cursor is checked here, with the rest
    of the query, so a bad one is 400 "Invalid cursor" before any lookup (of the list's parent,
    say) could answer 404 first."""

    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=200)

    @field_validator("cursor", mode="after")
    @classmethod
    def _decodable(cls, value: str | None) -> str | None:
        if value:
            cls.cursor_check(value)
        return value

    @classmethod
    def cursor_check(cls, cursor: str) -> None:
        """Raise InvalidCursor (400) unless `cursor` is one of this list's; a list whose
        cursors are made otherwise (ranked search hits) overrides it."""
        cursor_check(cursor)


class ErrorOut(Schema):
    detail: str


class ValidationErrorItem(Schema):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(Schema):
    detail: list[ValidationErrorItem]


def error_responses(*codes: int) -> dict[int, Any]:
    """Response schemas for the error statuses an operation can return, so the OpenAPI document
    lists every status code clients will see."""
    return {code: ValidationErrorOut if code == 422 else ErrorOut for code in codes}


# Every authenticated operation can answer these.
AUTHENTICATED_ERRORS = (401, 403)
# Operations with a JSON body can also answer these.
BODY_ERRORS = (400, 413, 422)


def page_route(
    router: Router,
    page_schema: type[Schema],
    *,
    summary: str,
    path: str = "",
    errors: tuple[int, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare `GET path` (by default the router's own path) as a keyset-paged list
    (`PageParams` or a subclass in its query): it answers `page_schema` (`items`,
    `next_cursor`; the view may return a `core.pagination.Page`), 400 for a bad cursor, 401/403
    for the caller, 422 for the query, and the `errors` its own lookups add. The route's policy
    is its router's."""
    return router.get(
        path,
        response={200: page_schema, **error_responses(400, *AUTHENTICATED_ERRORS, *errors, 422)},
        summary=summary,
    )


class ShownOnce:
    """A just-created object with the secret its creation response shows once (a raw API key,
    a webhook's signing secret): the response schema reads the secret from here and every other
    field from the object, so the schema stays the one listing of the body and the secret is
    never stored on the object."""

    def __init__(self, obj: Any, **secrets: str) -> None:
        self._obj = obj
        self.__dict__.update(secrets)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._obj, name)


def validate_body(schema: type[S], data: Any) -> S:
    """Validate data parsed by hand (form posts, optional bodies) and report failures exactly
    like ninja does for declared bodies: 422 with a list of errors located under "body"."""
    from ninja.errors import ValidationError
    from pydantic import ValidationError as PydanticValidationError

    try:
        return schema.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(
            [
                {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False)
            ]
        ) from None


def optional_body(request: Any) -> Any:
    """An optional body as data: JSON, or form fields; {} when there is none. 400 when it does
    not parse or breaks a limit, 415 for other media types (core/parsing.py)."""
    from core.parsing import body_data

    return body_data(request)


def optional_body_openapi(schema: type[Schema]) -> dict[str, Any]:
    """The `openapi_extra` of an operation whose JSON body is optional (read with
    `optional_body`, validated with `validate_body` against `schema`), which ninja's declared
    bodies cannot express: the document still lists the body, as not required."""
    return {
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": schema.model_json_schema()}},
        }
    }


def client_json(value: Schema) -> dict[str, Any]:
    """A schema instance encoded exactly as API responses are (ninja's JSON encoder: datetimes
    to milliseconds, "Z" for UTC), for payloads sent outside a response, e.g. websocket events.
    One encoding, so a message has the same created_at over REST and websocket."""
    import json

    from ninja.responses import NinjaJSONEncoder

    return json.loads(json.dumps(value.model_dump(), cls=NinjaJSONEncoder))  # type: ignore[no-any-return]


def client_datetime(value: datetime) -> str:
    """A datetime as `client_json` and API responses encode it (ninja's encoder: milliseconds,
    "Z" for UTC), for payloads built from plain values rather than a schema instance."""
    return _ENCODER.default(value)  # type: ignore[no-any-return]


SchemaReader = Callable[[Any], dict[str, Any]]


def schema_reader(schema: type[Schema]) -> SchemaReader:
    """What `schema.from_orm(obj).model_dump()` gives, without validating: every field of
    `schema` in its order, read from `obj` as ninja reads it (the schema's static
    `resolve_<field>(obj)`, else the attribute of that name), with the two conversions validation
    makes of values that already have the field's type — a `float` field's int becomes a float,
    a `Literal` field's text enum member its plain text — and a `list[<Schema>]` field read item
    by item with that schema's own reader. Datetimes stay datetimes, for the renderer (or
    `client_datetime`) to encode.

    For bodies built on every request from values that are already typed (a service's result,
    rows read by a fixed statement): the schema stays the one listing of the shape — the
    OpenAPI document and these bytes both come from it — without ~25 µs of ninja's validation
    per object. Nothing is checked: the tests compare the reader with `from_orm` for each schema
    it serves.

    The reader is compiled from the schema once, the way dataclasses and namedtuple build their
    methods: one dict display with a term per field, as fast as a hand-written one (a loop over
    the fields cost a history page of 50 messages ~60 µs more; docs/benchmarks.md)."""
    namespace: dict[str, Any] = {}
    terms = []
    for index, (name, info) in enumerate(schema.model_fields.items()):
        if not name.isidentifier():
            raise TypeError(f"{schema.__name__}.{name} is not an identifier")
        resolver = _resolver(schema, name)
        if resolver is not None:
            namespace[f"_resolve{index}"] = resolver
            term = f"_resolve{index}(obj)"
        else:
            term = f"obj.{name}"
        convert = _field_conversion(info.annotation)
        if convert is not None:
            namespace[f"_convert{index}"] = convert
            term = f"(None if (_value := {term}) is None else _convert{index}(_value))"
        terms.append(f"{name!r}: {term}")
    source = "def read(obj):\n    return {" + ", ".join(terms) + "}\n"
    exec(source, namespace)  # noqa: S102 - built from the schema's own field names, checked above
    read: SchemaReader = namespace["read"]
    read.__qualname__ = read.__name__ = f"read_{schema.__name__}"
    return read


def _resolver(schema: type[Schema], name: str) -> Callable[[Any], Any] | None:
    resolver = schema.__dict__.get(f"resolve_{name}")
    if resolver is None:
        return None
    if not isinstance(resolver, staticmethod):
        raise TypeError(f"{schema.__name__}.resolve_{name} must be a staticmethod")
    return resolver.__func__  # type: ignore[no-any-return]


def _field_conversion(annotation: Any) -> Callable[[Any], Any] | None:
    """How validation changes an already typed value of a field of this type (None: not at
    all). Optional types (`X | None`) convert as X; None stays None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        arms = [arm for arm in typing.get_args(annotation) if arm is not type(None)]
        if len(arms) == 1:
            annotation = arms[0]
    if annotation is float:
        return float
    if typing.get_origin(annotation) is typing.Literal and all(
        isinstance(value, str) for value in typing.get_args(annotation)
    ):
        return str
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if isinstance(item, type) and issubclass(item, Schema):
            read_item = schema_reader(item)
            return lambda items: [read_item(each) for each in items]
    return None


def rendered_json(
    data: Any, status: int = 200, *, response: HttpResponse | None = None
) -> HttpResponse:
    """`data` as the HttpResponse ninja's JSON renderer makes of a response body (same encoder,
    same content type), for an operation that builds its body without its response schema —
    ninja returns an HttpResponse as it is, without validating it again. The operation still
    declares the schema, for the OpenAPI document; its tests prove the bytes are the same.

    An operation that takes ninja's temporal `response` (to set headers on it) passes it here:
    ninja returns a view's HttpResponse as it is, so the headers set on the temporal one would
    otherwise be lost. The body is rendered into it, as ninja's `create_response` does."""
    content = _RENDERER.render(None, data, response_status=status)  # type: ignore[arg-type]
    if response is None:
        return HttpResponse(
            content,
            status=status,
            content_type=f"{_RENDERER.media_type}; charset={_RENDERER.charset}",
        )
    response.status_code = status
    response.content = content
    return response


# The renderer config.api's NinjaAPI uses (ninja's default), and its encoder.
_RENDERER = JSONRenderer()
_ENCODER = _RENDERER.encoder_class()
