"""JSON-lines logging: one object per line, with the request id of the request being served."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from core.outages import CHANNEL_LAYER, dependency_of, outage_report
from core.request_context import current_request_id

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class OutageResponseFilter(logging.Filter):
    """Drops django.request's line for each 503 response. A 503 means a dependency is
    unavailable, and core.outages logs that once per outage (and its end): a line per refused
    request would bury both."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) != 503


class ChannelLayerOutageFilter(logging.Filter):
    """For channels-redis' pub/sub receive loop, which logs a traceback every second while its
    Redis is away ("Unexpected exception in receive task") and reconnects by itself: such a
    record becomes a report of the channel layer's outage (logged once, watched until it ends,
    and then the sockets catch up: core.outages, messaging.realtime). Any other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or dependency_of(exc) is None:
            return True
        outage_report(CHANNEL_LAYER, exc)
        return False
