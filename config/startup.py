"""What a serving process does once its application is loaded, before its first request."""

import gc

from messaging.agent import get_agent


def serving_process_prepare() -> None:
    """Load what every message needs (the agent: its intent model and knowledge base), then
    move every object made so far out of the cyclic garbage collector's sight (`gc.freeze`).

    Django, the apps and the agent's model live as long as the process. Left in the oldest
    generation, each of the collector's full passes walked all of them (~140 000 objects)
    while holding the GIL, so every request thread of the worker waited: 50-95 ms a pass,
    measured in-process after the message route's warm-up; 0.3-0.7 ms with them frozen
    (docs/benchmarks.md). Objects made by requests are still collected as before."""
    get_agent()
    gc.freeze()
