"""Lazy, tolerant access to the agent's Django settings."""

from __future__ import annotations

from typing import Any

DEFAULT_BACKEND = "messaging.agent.rules.RuleBasedAgent"
DEFAULT_MAX_TURNS = 20
DEFAULT_LLM_TIMEOUT = 10.0


def setting(name: str, default: Any) -> Any:
    """Return ``settings.<name>``, or ``default`` when it is unset.

    Read at call time, never at import time. Settings that are not configured at all (the
    evaluation CLI, or the agent's tests run without pytest-django) also yield ``default``:
    the agent is usable as a plain library, and inside Django the real settings always win.
    """
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:
        return default
