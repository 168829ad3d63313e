"""Agents for the fault tests' servers (AGENT_BACKEND=tests.faults.agents.HoldOnceAgent)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from messaging.agent import AgentReply, ConversationSnapshot
from messaging.agent.rules import RuleBasedAgent

HOLD_MARKER = "[hold]"


class HoldOnceAgent(RuleBasedAgent):
    """The rule-based agent, except that the first message carrying HOLD_MARKER while the file
    FAULT_HOLD_FLAG exists is held for two minutes (the flag is consumed, and
    `<flag>.holding` says the request is now in flight): a request caught mid-write, for a test
    to kill its process. Every later message, the same one retried included, answers at once."""

    def respond_now(self, conversation: ConversationSnapshot, message: str) -> AgentReply | None:
        flag = os.environ.get("FAULT_HOLD_FLAG", "")
        if flag and HOLD_MARKER in message:
            try:
                os.remove(flag)
            except FileNotFoundError:
                pass
            else:
                Path(f"{flag}.holding").touch()
                time.sleep(120)
        return super().respond_now(conversation, message)
