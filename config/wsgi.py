"""The WSGI application (granian in production, config.serving).

Django hands the server its response object to iterate and close. For a buffered response
(`HttpResponse`: every API answer and page) that costs the server a Python iterator, a call per
chunk and a `close()` call back into Python after sending; granian then streams the body
instead of writing it at once. `BufferedWSGIHandler` returns such a body as a one-item list —
the form WSGI servers write in one go — after closing the response itself (Django's
`request_finished`: database connections back to the pool, caches closed). Measured under the
process load: 1.09× the requests per second of Django's own handler (docs/benchmarks.md).
Streaming and file responses are passed on untouched.

It also closes a request thread's database connections when the thread ends (the WSGI tier
keeps one per thread; see `_ThreadConnections`).
"""

import os
import threading
from collections.abc import Callable
from typing import Any

import django
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections
from django.http import HttpResponse


class _ThreadConnections:
    """Kept in a request thread's locals: when the thread ends, its locals are dropped and this
    closes the thread's database connections.

    The WSGI tier keeps a connection per request thread (DB_CONN_MAX_AGE, config.serving), and
    granian ends a blocking thread after it idles (30 s by default). Django's connection objects
    reference each other, so a dead thread's connection waited for the cyclic garbage collector
    — in a quiet server, indefinitely: measured, every lull left another 3-4 PostgreSQL
    connections open (4 → 16 over five lulls). This object is referenced only by the locals,
    so it goes at once."""

    def __init__(self) -> None:
        self.wrappers = [connections[alias] for alias in connections]

    def __del__(self) -> None:
        for wrapper in self.wrappers:
            raw = wrapper.connection
            if raw is not None:
                # The owning thread has ended: nobody else uses this connection.
                raw.close()


_request_thread = threading.local()


class BufferedWSGIHandler(WSGIHandler):
    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Any:  # a list of one body, or what Django returned
        if not hasattr(_request_thread, "connections"):
            _request_thread.connections = _ThreadConnections()
        response = super().__call__(environ, start_response)
        if not isinstance(response, HttpResponse):  # streaming, file, or a server's wrapper
            return response
        try:
            return [response.content]
        finally:
            response.close()


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)  # as django.core.wsgi.get_wsgi_application
application = BufferedWSGIHandler()

from config.startup import serving_process_prepare  # noqa: E402 - needs Django set up

serving_process_prepare()
