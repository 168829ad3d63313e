"""Shared schemas: error bodies (SPEC §3), strict request bases and cursor pages."""

from __future__ import annotations

from typing import Any

from ninja import Schema
from pydantic import ConfigDict


class StrictIn(Schema):
    """Request bodies refuse unknown fields (422) instead of silently ignoring them."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(Schema):
    detail: str


class ServerErrorOut(Schema):
    detail: str
    request_id: str | None


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
