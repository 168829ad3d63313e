"""Parley's support agent (README, "The agent").

``get_agent()`` returns the process-wide backend named by ``settings.AGENT_BACKEND``; the
default is the offline :class:`~messaging.agent.rules.RuleBasedAgent`.
"""

from __future__ import annotations

import functools

from messaging.agent import conf
from messaging.agent.base import (
    INTENTS,
    AgentBackend,
    AgentReply,
    ConversationSnapshot,
    TurnSnapshot,
)

__all__ = [
    "INTENTS",
    "AgentBackend",
    "AgentReply",
    "ConversationSnapshot",
    "TurnSnapshot",
    "get_agent",
]


@functools.cache
def get_agent() -> AgentBackend:
    """Return the configured agent, instantiated once per process.

    Backends hold no per-request state, so one instance serves every request. Tests that
    change ``AGENT_BACKEND`` call ``get_agent.cache_clear()`` before and after.
    """
    from django.core.exceptions import ImproperlyConfigured
    from django.utils.module_loading import import_string

    dotted_path = conf.setting("AGENT_BACKEND", conf.DEFAULT_BACKEND) or conf.DEFAULT_BACKEND
    try:
        backend_class = import_string(dotted_path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"AGENT_BACKEND {dotted_path!r} cannot be imported") from exc
    if not (isinstance(backend_class, type) and issubclass(backend_class, AgentBackend)):
        raise ImproperlyConfigured(f"AGENT_BACKEND {dotted_path!r} is not an AgentBackend")
    return backend_class()
