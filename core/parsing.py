"""One request-parsing layer for every API input: JSON bodies, form bodies and query strings.

Limits are checked here, where input enters, so no route can forget them:
- JSON nested deeper than `MAX_JSON_DEPTH` is refused before `json.loads` sees it (the C decoder
  raises RecursionError, not ValueError, on very deep input);
- more than `MAX_FIELDS` form or query fields are refused (Django's own limit,
  DATA_UPLOAD_MAX_NUMBER_FIELDS, stays at its default because the admin's bulk forms need more),
  the query string on every API route, whether the route reads it or not (config.middleware);
- form bodies must be UTF-8 (Django refuses other charsets with BadRequest; we say so up front
  with a 400 rather than guess at an encoding a client named), and so must every field in them:
  a lone surrogate is a 400, not text Django quietly turned into U+FFFD.

Every refusal is a `MalformedRequest` (400). Django's own bad-request exceptions raised lazily
by `request.POST`/`request.GET` are mapped to 400/413 by config/api.py's handlers as well.

The websocket consumers parse frames with `json_loads` so a frame obeys the same depth rule.
"""

from __future__ import annotations

import json
import re
from typing import Any, cast
from urllib.parse import unquote_to_bytes

from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, RawPostDataException
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


class JsonTooDeep(MalformedRequest):
    default_detail = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"


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
        raise JsonTooDeep()
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedRequest("Cannot parse request body") from None


TOO_MANY_FIELDS = f"More than {MAX_FIELDS} form or query fields"


def _ensure_field_count(data: MultiValueDict[str, Any]) -> None:
    if sum(len(values) for _key, values in data.lists()) > MAX_FIELDS:
        raise MalformedRequest(TOO_MANY_FIELDS)


def query_field_count_exceeded(request: HttpRequest) -> bool:
    """More than MAX_FIELDS fields in the query string, whether or not the route reads it
    (config.middleware asks for every API request). Free for ordinary requests: a query
    string with no more than MAX_FIELDS - 1 separators cannot hold more fields."""
    query = request.META.get("QUERY_STRING", "")
    if query.count("&") < MAX_FIELDS:
        return False
    try:
        query_params(request)
    except (MalformedRequest, TooManyFieldsSent):  # ours, or Django's own (higher) limit
        return True
    return False


def query_params(request: HttpRequest) -> MultiValueDict[str, Any]:
    """The query string's fields, at most MAX_FIELDS of them."""
    data = request.GET  # Django raises TooManyFieldsSent past its own (higher) limit
    _ensure_field_count(data)
    return data


NOT_UTF8_FORM = "Form bodies must be UTF-8 encoded"
_REPLACEMENT_CHARACTER = "\ufffd"


def form_fields(request: HttpRequest) -> MultiValueDict[str, Any]:
    """A form body's fields: UTF-8 only, at most MAX_FIELDS of them."""
    charset = (request.content_params or {}).get("charset", "utf-8").strip().lower()
    if charset.replace("_", "-") not in ("utf-8", "utf8"):
        raise MalformedRequest(NOT_UTF8_FORM)
    if not form_body_is_utf8(request):
        raise MalformedRequest(NOT_UTF8_FORM)
    data = request.POST  # Django raises TooManyFieldsSent / BadRequest lazily
    _ensure_field_count(data)
    return data


def form_body_is_utf8(request: HttpRequest) -> bool:
    """Whether every field of a form body is UTF-8 text. Django decodes form fields with
    errors="replace": a lone surrogate or any other byte sequence that is not UTF-8 silently
    becomes U+FFFD, and a sign-in with such a name would fail as a wrong password (401) instead
    of as the malformed input it is (400). So the raw body is checked: percent-decoded for a
    URL-encoded form; for multipart, no field may hold more U+FFFD than the body spelled out."""
    content_type = (request.content_type or "").lower()
    if content_type == "application/x-www-form-urlencoded":
        try:
            unquote_to_bytes(request.body.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    if content_type == "multipart/form-data":
        try:
            body = request.body  # before request.POST: afterwards a multipart body is gone
        except RawPostDataException:  # already parsed (a browser form behind CSRF checks)
            return True
        spelled = body.count(_REPLACEMENT_CHARACTER.encode("utf-8"))
        decoded = sum(
            key.count(_REPLACEMENT_CHARACTER)
            + sum(str(value).count(_REPLACEMENT_CHARACTER) for value in values)
            for key, values in request.POST.lists()
        )
        return decoded <= spelled
    return True


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
