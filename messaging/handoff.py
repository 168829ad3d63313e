"""The hand-off seam: how messaging asks for a human without knowing who provides one.

`message_send` decides *when* a conversation goes to a human (the agent asked for it) and must
do it inside its own transaction, under the conversation's row lock, so the customer's message,
the agent's announcement and the escalation commit together or not at all. *How* a hand-off is
recorded (the Escalation row, the operators' live feed) belongs to the escalations app, which
sits above messaging. So messaging owns this small interface and escalations registers its
implementation from `EscalationsConfig.ready()`; messaging never imports escalations.

Why a registry and not "the agent's reply carries the decision to a caller in escalations":
the decision has to act inside `message_send`'s transaction (same lock, same commit, same
idempotency record), and REST and the websocket call `message_send` directly. Moving the
transaction up into escalations would make escalations the owner of every customer message;
a registered implementation keeps the flow where it is and only inverts the import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from messaging.models import Conversation


@dataclass(frozen=True)
class HandoffState:
    """An unresolved hand-off as messaging needs it while the agent is silent: its id, and the
    display name of the operator who joined (None while nobody has)."""

    id: int
    operator_name: str | None


class OpenedHandoff(Protocol):
    """A hand-off just opened, as messaging reads it: its id."""

    @property
    def pk(self) -> int: ...


class HandoffProvider(Protocol):
    def handoff_open(
        self,
        *,
        conversation: Conversation,
        reason: str,
        intent: str | None,
        confidence: float | None,
    ) -> OpenedHandoff:
        """Hand the (locked) conversation to humans; return the hand-off. Opening twice
        returns the open one."""
        ...

    def handoff_current(self, *, conversation: Conversation) -> HandoffState | None:
        """The conversation's unresolved hand-off and who holds it, if any."""
        ...


_provider: HandoffProvider | None = None


def handoff_provider_register(provider: HandoffProvider) -> None:
    """Called once from the providing app's `AppConfig.ready()`."""
    global _provider
    _provider = provider


def handoff_provider() -> HandoffProvider:
    if _provider is None:
        # Deny by default: without a provider an agent's "escalate" would be silently lost.
        raise RuntimeError("No hand-off provider registered (is 'escalations' installed?)")
    return _provider
