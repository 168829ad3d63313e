"""A serving process (config.wsgi, config.asgi) loads the agent before its first request and
freezes what it made at start-up out of the garbage collector's full passes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

PROBE = (
    "import gc, importlib, sys; importlib.import_module(sys.argv[1]); "
    "from messaging.agent import get_agent; "
    "print(gc.get_freeze_count(), get_agent.cache_info().currsize)"
)


@pytest.mark.parametrize("module", ["config.wsgi", "config.asgi"])
def test_serving_process_loads_the_agent_and_freezes_its_startup_objects(module):
    # A process of its own: freezing this test process's objects would outlive the test.
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings")
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, module],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    frozen, agents = (int(word) for word in completed.stdout.split())
    assert agents == 1  # the agent's model was loaded at start-up, not by the first message
    # Django, the apps and the model: well over the 10 000 objects a bare interpreter has.
    assert frozen > 50_000
