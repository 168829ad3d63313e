"""What services published to the channel layer, for tests (the `pushed` fixture replaces
`messaging.realtime.publish`; pushes run after commit, so a test runs its change inside
`django_capture_on_commit_callbacks(execute=True)`)."""

from __future__ import annotations

import json
from typing import Any


class Pushes(list[tuple[str, dict[str, Any]]]):
    """Every (group, event) published, in order."""

    def messages(self, group: str) -> list[dict[str, Any]]:
        return pushed_messages(self, group)


def pushed_messages(pushed: list[tuple[str, dict[str, Any]]], group: str) -> list[dict[str, Any]]:
    """The messages the `messages.created` events for `group` carry, in order, decoded from the
    client frames encoded in them."""
    messages = []
    for event_group, event in pushed:
        if event_group == group and event["type"] == "messages.created":
            for item in event["messages"]:
                frame = json.loads(item["frame"])
                assert frame["type"] == "message"
                assert frame["message"]["seq"] == item["seq"]
                messages.append(frame["message"])
    return messages
