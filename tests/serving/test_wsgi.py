"""config.wsgi: a buffered response reaches the WSGI server as a one-item list, already closed;
streaming responses are passed on as Django returned them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.signals import request_finished
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory

from config.wsgi import BufferedWSGIHandler, application


class StartResponse:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        self.calls.append((status, headers))


def _environ(path: str, **extra: Any) -> dict[str, Any]:
    return RequestFactory().get(path, **extra).environ


@pytest.fixture
def finished() -> Any:
    seen: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(sender)

    request_finished.connect(receiver)
    yield seen
    request_finished.disconnect(receiver)


@pytest.mark.django_db
def test_the_application_answers_with_one_body_already_closed(finished: list[Any]) -> None:
    start = StartResponse()
    body = application(_environ("/api/v1/health"), start)

    assert isinstance(body, list)
    assert len(body) == 1
    assert isinstance(body[0], bytes)
    assert json.loads(body[0])["status"] == "ok"
    ((status, headers),) = start.calls
    assert status == "200 OK"
    assert ("Content-Type", "application/json; charset=utf-8") in headers
    # request_finished (connections back to the pool) ran before the server got the body.
    assert len(finished) == 1


def test_a_buffered_response_is_closed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    response = HttpResponse(b"one", content_type="text/plain")
    response.write(b" two")
    closed: list[bool] = []
    response._resource_closers.append(lambda: closed.append(True))
    handler = BufferedWSGIHandler()
    monkeypatch.setattr(handler, "get_response", lambda request: response)

    assert handler(_environ("/x"), StartResponse()) == [b"one two"]
    assert closed == [True]


def test_a_streaming_response_is_passed_on_open(monkeypatch: pytest.MonkeyPatch) -> None:
    response = StreamingHttpResponse(iter([b"a", b"b"]))
    closed: list[bool] = []
    response._resource_closers.append(lambda: closed.append(True))
    handler = BufferedWSGIHandler()
    monkeypatch.setattr(handler, "get_response", lambda request: response)

    body = handler(_environ("/x"), StartResponse())

    assert body is response
    assert closed == []  # the server closes it after streaming
    assert b"".join(body) == b"ab"
