"""config.wsgi: a buffered response reaches the WSGI server as a one-item list, already closed;
streaming responses are passed on as Django returned them."""

from __future__ import annotations

import json
import threading
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


def _is_closed(raw: Any) -> bool:
    closed = getattr(raw, "closed", None)  # psycopg: a bool
    if isinstance(closed, bool):
        return closed
    try:  # sqlite3 has no flag: a closed connection refuses to work
        raw.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - sqlite3.ProgrammingError
        return True
    return False


@pytest.mark.django_db(transaction=True)
def test_a_request_threads_connection_closes_when_the_thread_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """granian ends idle request threads; with a connection kept per thread (DB_CONN_MAX_AGE)
    the thread's connection must close with it, not wait for the cyclic garbage collector
    (a leaked PostgreSQL connection per thread and lull, measured before the fix)."""
    from django.db import connection

    handler = BufferedWSGIHandler()
    raws: list[Any] = []

    def serve(request: Any) -> HttpResponse:
        connection.ensure_connection()  # this thread's own connection
        raws.append(connection.connection)
        return HttpResponse(b"ok")

    monkeypatch.setattr(handler, "get_response", serve)
    # Django closes connections at the end of a request unless they persist: keep it open, as
    # the WSGI tier does.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 600)

    def request_thread() -> None:
        assert handler(_environ("/x"), StartResponse()) == [b"ok"]
        assert not _is_closed(raws[0])  # still open after the request: it persists

    thread = threading.Thread(target=request_thread)
    thread.start()
    thread.join()

    (raw,) = raws
    assert _is_closed(raw)  # closed when the thread ended, no garbage collection asked for
