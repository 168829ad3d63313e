"""One request-parsing layer for every API input: JSON bodies, form bodies and query strings.

Limits are checked here, where input enters, so no route can forget them:
- JSON nested deeper than `MAX_JSON_DEPTH` is refused before `json.loads` sees it (the C decoder
  raises RecursionError, not ValueError, on very deep input);
- more than `MAX_FIELDS` form or query fields are refused (Django's own limit,
  DATA_UPLOAD_MAX_NUMBER_FIELDS, stays at its default because the admin's bulk forms need more);
- form bodies must be UTF-8 (Django refuses other charsets with BadRequest; we say so up front
  with a 400 rather than guess at an encoding a client named).

Every refusal is a `MalformedRequest` (400). Django's own bad-request exceptions raised lazily
by `request.POST`/`request.GET` are mapped to 400/413 by config/api.py's handlers as well.

The websocket consumers parse frames with `json_loads` so a frame obeys the same depth rule.
"""

from __future__ import annotations

import json
import re
from typing import Any, cast

from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from ninja.parser import Parser

from core.errors import ParleyError

MAX_JSON_DEPTH = 32
MAX_FIELDS = 100

FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

# Strings (which may hold brackets) and brackets: enough to measure nesting without decoding.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


class MalformedRequest(ParleyError):
    status_code = 400
    default_detail = "Malformed request"


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `raw` nests arrays/objects deeper than `limit`. Runs at C speed on ordinary
    bodies: fewer brackets than the limit cannot nest past it."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for match in _JSON_TOKENS.finditer(raw):
        token = match.group()
        if len(token) != 1:
            continue  # a string
        if token[0] in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def json_loads(raw: bytes | str) -> Any:
    """Decode a JSON document, refusing deep nesting and undecodable bytes with
    MalformedRequest (never RecursionError or UnicodeDecodeError)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if json_depth_exceeds(data):
        raise MalformedRequest(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedRequest("Cannot parse request body") from None


TOO_MANY_FIELDS = f"More than {MAX_FIELDS} form or query fields"


def _ensure_field_count(data: MultiValueDict[str, Any]) -> None:
    if sum(len(values) for _key, values in data.lists()) > MAX_FIELDS:
        raise MalformedRequest(TOO_MANY_FIELDS)


def query_params(request: HttpRequest) -> MultiValueDict[str, Any]:
    """The query string's fields, at most MAX_FIELDS of them."""
    data = request.GET  # Django raises TooManyFieldsSent past its own (higher) limit
    _ensure_field_count(data)
    return data


def form_fields(request: HttpRequest) -> MultiValueDict[str, Any]:
    """A form body's fields: UTF-8 only, at most MAX_FIELDS of them."""
    charset = (request.content_params or {}).get("charset", "utf-8").strip().lower()
    if charset.replace("_", "-") not in ("utf-8", "utf8"):
        raise MalformedRequest("Form bodies must be UTF-8 encoded")
    data = request.POST  # Django raises TooManyFieldsSent / BadRequest lazily
    _ensure_field_count(data)
    return data


def body_data(request: HttpRequest) -> Any:
    """An optional body as data: JSON or form fields; {} when there is none. 400 when it does
    not parse, 415 for other media types."""
    content_type = (request.content_type or "").lower()
    if content_type == "application/json":
        return json_loads(request.body) if request.body else {}
    if content_type in FORM_CONTENT_TYPES:
        return form_fields(request).dict()
    if not request.body:
        return {}
    raise UnsupportedMediaType()


class UnsupportedMediaType(ParleyError):
    status_code = 415
    default_detail = "Send JSON or form data"


class ParleyParser(Parser):
    """Ninja's parser with Parley's limits: declared JSON bodies, forms and query strings all go
    through the functions above."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return cast(dict[str, Any], json_loads(request.body))

    def parse_querydict(
        self, data: MultiValueDict[str, Any], list_fields: list[str], request: HttpRequest
    ) -> dict[str, Any]:
        if data is request.GET:
            _ensure_field_count(data)
        elif data is request.POST:
            data = form_fields(request)
        return super().parse_querydict(data, list_fields, request)
