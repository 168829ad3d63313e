"""Shared schemas: error bodies (docs/api.md, Errors), strict request bases and cursor pages."""

from __future__ import annotations

from typing import Any, TypeVar

from ninja import Schema
from pydantic import ConfigDict

S = TypeVar("S", bound=Schema)


class StrictIn(Schema):
    """Request bodies refuse unknown fields (422) instead of silently ignoring them."""

    model_config = ConfigDict(extra="forbid")


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
    """An optional body as data: JSON, or form fields; {} when there is none. 400 when the
    JSON does not parse, 415 for other media types."""
    import json

    from ninja.errors import HttpError

    content_type = (request.content_type or "").lower()
    if content_type == "application/json":
        if not request.body:
            return {}
        try:
            return json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "Cannot parse request body") from None
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.POST.dict()
    if not request.body:
        return {}
    raise HttpError(415, "Send JSON or form data")


def client_json(value: Schema) -> dict[str, Any]:
    """A schema instance encoded exactly as API responses are (ninja's JSON encoder: datetimes
    to milliseconds, "Z" for UTC), for payloads sent outside a response, e.g. websocket events.
    One encoding, so a message has the same created_at over REST and websocket."""
    import json

    from ninja.responses import NinjaJSONEncoder

    return json.loads(json.dumps(value.model_dump(), cls=NinjaJSONEncoder))  # type: ignore[no-any-return]
