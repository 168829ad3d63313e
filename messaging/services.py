"""Writes for conversations. `message_send` is the one path for a customer's message, used by
`POST /messages/process` and the websocket alike."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import User
from accounts.ratelimits import RateUsage, user_rate_limit_enforce
from core.errors import NotFound, UnprocessableRequest
from core.request_context import CallContext
from core.schemas import client_json
from messaging import fastpath, handoff, idempotency
from messaging.agent import (
    AgentReply,
    ConversationSnapshot,
    get_agent,
)
from messaging.events import CONVERSATION_CREATED, domain_event_record
from messaging.fastpath import NewMessage as NewMessage
from messaging.models import Conversation, Message, is_possible_id
from messaging.realtime import conversation_status_event, publish_on_commit, run_in_background
from messaging.schemas import ConversationOut
from messaging.validation import clean_message_text

SYSTEM_AGENT_NAME = "system"
ESCALATED_ACKNOWLEDGEMENT = (
    "Thanks, your message is with our support team. An operator will answer here shortly."
)


def operator_has_it_text(operator_name: str) -> str:
    """The answer to a customer message once an operator has joined (not written to the
    transcript: the operator answers there in person)."""
    return f"{operator_name} has your message."


# Message.metadata key marking the acknowledgement of an escalation (its id).
ACKNOWLEDGES = "acknowledges_escalation"


@dataclass(frozen=True)
class MessageSendResult:
    """What one customer turn produced, in domain terms: the REST adapter (messaging.api) and
    the websocket adapter (messaging.consumers) shape their own responses from it."""

    conversation_id: int
    customer_message_id: int
    customer_message_seq: int
    reply_id: int
    reply_seq: int
    reply_text: str
    status: str  # "success" | "escalated" (the conversation's state after the turn)
    agent: str  # the agent's name, or "system" while an operator has the conversation
    intent: str | None
    confidence: float | None
    escalation_id: int | None
    public_metadata: dict[str, Any]  # what the agent may show clients (e.g. `fallback`)
    turn_count: int
    replayed: bool = False
    rate: RateUsage | None = None

    @property
    def escalated(self) -> bool:
        return self.status == "escalated"

    def to_record(self) -> dict[str, Any]:
        """The JSON stored with an idempotency key (everything but this call's own facts)."""
        record = asdict(self)
        del record["replayed"], record["rate"]
        return record

    @classmethod
    def from_record(
        cls, record: dict[str, Any], *, replayed: bool, rate: RateUsage | None
    ) -> MessageSendResult:
        if "response" in record:
            record = _record_from_rest_body(record)
        values = {name: record[name] for name in _RECORD_FIELDS}
        return cls(**values, replayed=replayed, rate=rate)


# --- Building blocks shared with escalations -----------------------------------------------


def conversation_lock(*, conversation_id: int) -> Conversation | None:
    """Lock the conversation row for the rest of the transaction (PostgreSQL: FOR UPDATE;
    SQLite: the IMMEDIATE transaction already holds the write lock). None when it does not
    exist. No ordering: the model's default would sort a one-row primary-key read."""
    if not is_possible_id(conversation_id):
        return None
    return Conversation.objects.select_for_update().filter(pk=conversation_id).order_by().first()


def conversation_append(*, conversation: Conversation, messages: list[NewMessage]) -> list[Message]:
    """Append messages to a conversation the caller holds locked (`conversation_lock`, inside
    a transaction), leaving it in its (possibly just changed) status, through the one writer:
    the next seqs, the message.created events, the push after commit
    (messaging.fastpath.messages_write). The caller saves its other changes afterwards
    (`conversation_save`)."""
    written = fastpath.messages_write(
        conversation_id=conversation.pk,
        customer_id=conversation.customer_id,
        messages=messages,
        status=conversation.status,
    )
    if written is None:  # the row is locked: it cannot have gone
        raise NotFound("Conversation not found")
    conversation.last_seq = written.last_seq
    conversation.updated_at = written.updated_at
    return [fastpath.message_instance(conversation, message) for message in written.messages]


def conversation_save(
    *, conversation: Conversation, status_changed: bool = False, escalation_id: int | None = None
) -> None:
    """Save what an operator's action changes besides messages — the status (pushed when it
    changed) and the agent's turn counter — on the locked conversation. Seqs and turn counters
    advance only in the writer (`conversation_append`)."""
    conversation.save(update_fields=["status", "agent_turns", "updated_at"])
    if status_changed:
        publish_on_commit(
            [conversation_status_event(conversation.pk, conversation.status, escalation_id)]
        )


def conversation_event_data(conversation: Conversation) -> dict[str, Any]:
    """`data` of the conversation.created domain event (webhooks), encoded like the API's
    conversation items (milliseconds, "Z")."""
    item = client_json(ConversationOut.from_orm(conversation))
    return {
        "conversation_id": item["id"],
        "customer_id": item["customer_id"],
        "status": item["status"],
        "created_at": item["created_at"],
    }


# --- message_send ---------------------------------------------------------------------------


def message_rate_limit_enforce(
    *, user: User, context: CallContext | None = None
) -> RateUsage | None:
    return user_rate_limit_enforce(
        group="messages:user", rate=settings.RATE_LIMIT_MESSAGES, user=user, context=context
    )


def conversation_rate_limit_enforce(
    *, user: User, context: CallContext | None = None
) -> RateUsage | None:
    """New conversations per customer (RATE_LIMIT_CONVERSATIONS): each may become an
    escalation in the operators' queue. Only a send that starts a conversation counts."""
    return user_rate_limit_enforce(
        group="conversations:user",
        rate=settings.RATE_LIMIT_CONVERSATIONS,
        user=user,
        context=context,
    )


def message_send(
    *,
    customer: User,
    conversation_id: int | None,
    text: str,
    idempotency_key: str | None = None,
    context: CallContext | None = None,
    context_read: fastpath.ContextRead | None = None,
) -> MessageSendResult:
    """Store a customer's message and the reply in one transaction, and push both live.

    `conversation_id` None or 0 starts a new conversation; another customer's conversation is
    "not found" (404), like a missing one. While the conversation is escalated the agent stays
    silent and the reply is a system acknowledgement. When the agent asks for a human, a
    hand-off is opened in the same transaction (messaging.handoff). Rate limited per user
    (RATE_LIMIT_MESSAGES), and new conversations per customer (RATE_LIMIT_CONVERSATIONS); with
    an idempotency key a repeat replays the first result and writes nothing.

    `context_read`: the conversation's agent context already read for this customer (the REST
    route reads it in the token lookup's statement); it is used only for the customer and
    conversation it names, otherwise the turn reads for itself.
    """
    rate = message_rate_limit_enforce(user=customer, context=context)
    try:
        text = clean_message_text(text)
    except ValueError as exc:
        raise UnprocessableRequest(str(exc), loc=("body", "message")) from None
    conversation_id = conversation_id or None

    if idempotency_key is None:
        result = _message_send_claimed(
            customer=customer,
            conversation_id=conversation_id,
            text=text,
            claim=None,
            context=context,
            context_read=context_read,
        )
        return replace(result, rate=rate)
    # Keyed: the whole send is one transaction holding the key's claim (messaging.idempotency),
    # which a lost connection or a dead process releases with it.
    fingerprint = idempotency.request_fingerprint(
        {"customer_id": customer.pk, "conversation_id": conversation_id, "message": text}
    )
    outcome = idempotency.idempotency_run(
        user=customer,
        key=idempotency.validate_key(idempotency_key),
        fingerprint=fingerprint,
        work=lambda claim: _message_send_claimed(
            customer=customer,
            conversation_id=conversation_id,
            text=text,
            claim=claim,
            context=context,
            context_read=context_read,
        ),
    )
    if isinstance(outcome, idempotency.Replay):
        return MessageSendResult.from_record(outcome.body, replayed=True, rate=rate)
    return replace(outcome, rate=rate)


def _message_send_claimed(
    *,
    customer: User,
    conversation_id: int | None,
    text: str,
    claim: idempotency.Claim | None,
    context: CallContext | None,
    context_read: fastpath.ContextRead | None = None,
) -> MessageSendResult:
    current: fastpath.AgentContext | None = None
    if conversation_id is None:
        # Inside the key's claim (a replay starts nothing and is not counted, a refusal leaves
        # the key free), and only here: a send into an existing conversation costs no extra
        # round trip.
        conversation_rate_limit_enforce(user=customer, context=context)
    else:
        # Status, agent turns and the last messages, in one statement; ownership in its query
        # (read ahead with the caller's token when the route could: the same statement).
        current = (
            context_read.context
            if context_read is not None
            and (context_read.customer_id, context_read.conversation_id)
            == (customer.pk, conversation_id)
            else fastpath.agent_context(customer_id=customer.pk, conversation_id=conversation_id)
        )
        if current is None:
            raise NotFound("Conversation not found")

    # Ask the agent before taking the lock: a slow agent (an LLM) must not hold the
    # conversation's row lock. If an operator took over meanwhile, the answer is discarded.
    reply: AgentReply | None = None
    agent = get_agent()
    if current is None or current.status != Conversation.Status.ESCALATED:
        snapshot = _snapshot(customer, current)
        # An agent that needs no I/O answers in this thread; any other is awaited on the
        # process's background loop (async_to_sync from a WSGI thread would build a new event
        # loop and thread for every message: docs/benchmarks.md, fix 2).
        reply = agent.respond_now(snapshot, text)
        if reply is None:
            reply = run_in_background(agent.respond(snapshot, text))

    # An answer on a conversation the agent holds (active, or resolved: back to the agent)
    # needs nothing read under the lock: its statement checks the status that was read and
    # writes, without a transaction of its own when no idempotency record completes with it
    # (PostgreSQL: one round trip). Everything else — a new conversation, an escalated one, a
    # hand-off, or a conversation whose status changed since it was read — creates or locks
    # the row first and decides from what it holds. Both write through the same writer.
    turn = _Turn(customer=customer, text=text, agent_name=agent.name)
    result: MessageSendResult | None = None
    if (answered := _answered_without_lock(current, reply)) is not None:
        read, answer = answered
        # A keyed send is already inside its claim's transaction: no savepoint of its own.
        with transaction.atomic(savepoint=False) if claim is not None else nullcontext():
            result = _agent_turn(turn, answer, read.conversation_id, read.status)
            _complete(claim, result)
    if result is None:
        with transaction.atomic(savepoint=claim is None):
            result = _locked_turn(turn, reply, current)
            _complete(claim, result)
    return result


@dataclass(frozen=True)
class _Turn:
    """Who wrote what, and which agent was asked."""

    customer: User
    text: str
    agent_name: str


def _answered_without_lock(
    current: fastpath.AgentContext | None, reply: AgentReply | None
) -> tuple[fastpath.AgentContext, AgentReply] | None:
    """The reading and the answer of a turn that goes without the lock first: the agent
    answered (no hand-off) a conversation that exists. None: the row is created or locked
    first."""
    if current is None or reply is None or reply.escalate:
        return None
    return current, reply


def _complete(claim: idempotency.Claim | None, result: MessageSendResult | None) -> None:
    """Store the turn's result with its idempotency key, in the turn's transaction."""
    if claim is not None and result is not None:
        idempotency.idempotency_complete(claim=claim, status=200, body=result.to_record())


def _locked_turn(
    turn: _Turn, reply: AgentReply | None, current: fastpath.AgentContext | None
) -> MessageSendResult:
    """The turn with the conversation's row created or locked first (inside the caller's
    transaction): everything below reads the row as it is now, not `current`."""
    if current is None:
        conversation = Conversation.objects.create(customer=turn.customer)
        domain_event_record(CONVERSATION_CREATED, conversation_event_data(conversation))
    else:
        locked = conversation_lock(conversation_id=current.conversation_id)
        if locked is None:  # deleted since we read it
            raise NotFound("Conversation not found")
        conversation = locked
    if conversation.status == Conversation.Status.ESCALATED or reply is None:
        return _operator_turn(turn, conversation)
    result = _agent_turn(turn, reply, conversation.pk, conversation.status, locked=conversation)
    if result is None:  # the row is locked: it cannot have changed
        raise NotFound("Conversation not found")
    return result


def _agent_turn(
    turn: _Turn,
    reply: AgentReply,
    conversation_id: int,
    status: str,
    *,
    locked: Conversation | None = None,
) -> MessageSendResult | None:
    """The customer's message and the agent's answer on a conversation in `status` (active or
    resolved; afterwards active), and the hand-off when the agent asked for one (only with the
    row `locked`). None when the conversation is no longer in `status` (read without the lock),
    with nothing written."""
    written = fastpath.turn_write(
        conversation_id=conversation_id,
        customer_id=turn.customer.pk,
        text=turn.text,
        reply_text=reply.text,
        intent=reply.intent,
        confidence=reply.confidence,
        metadata=dict(reply.metadata),
        expected_status=status,
    )
    if written is None:
        return None
    escalation_id, escalated = None, False
    if reply.escalate:
        if locked is None:
            raise ValueError("a hand-off needs the conversation's row lock")
        # The hand-off goes on from the row as the turn left it.
        locked.status = Conversation.Status.ACTIVE
        locked.last_seq, locked.updated_at = written.last_seq, written.updated_at
        locked.turn_count, locked.agent_turns = written.turn_count, written.agent_turns
        opened = handoff.handoff_provider().handoff_open(
            conversation=locked,
            reason=reply.escalation_reason or f"Agent escalated ({reply.intent})",
            intent=reply.intent,
            confidence=reply.confidence,
        )
        escalation_id = opened.pk
        escalated = locked.status == Conversation.Status.ESCALATED
    elif status != Conversation.Status.ACTIVE:
        publish_on_commit(
            [conversation_status_event(conversation_id, Conversation.Status.ACTIVE, None)]
        )
    return _turn_result(
        written,
        answer=written.answer,
        escalated=escalated,
        agent_name=turn.agent_name,
        escalation_id=escalation_id,
        public_metadata=dict(reply.metadata),
    )


def _operator_turn(turn: _Turn, conversation: Conversation) -> MessageSendResult:
    """A message while an operator has the conversation (possibly only since the agent was
    asked): the agent stays silent. Until an operator joins, the acknowledgement enters the
    transcript once per escalation and later messages answer with that same message instead of
    repeating it. Once one has joined they answer in person: no notice promising that someone
    will, only the customer's message, answered with a line naming them."""
    current = handoff.handoff_provider().handoff_current(conversation=conversation)
    escalation_id = current.id if current is not None else None
    joined_by = current.operator_name if current is not None else None
    acknowledged = (
        None
        if joined_by is not None
        else _acknowledgement_of(conversation=conversation, escalation_id=escalation_id)
    )
    messages = [
        NewMessage(role=Message.Role.CUSTOMER, content=turn.text, author_id=turn.customer.pk)
    ]
    if joined_by is None and acknowledged is None:
        messages.append(
            NewMessage(
                role=Message.Role.SYSTEM,
                content=ESCALATED_ACKNOWLEDGEMENT,
                metadata={ACKNOWLEDGES: escalation_id},
            )
        )
    written = fastpath.messages_write(
        conversation_id=conversation.pk,
        customer_id=turn.customer.pk,
        messages=messages,
        status=conversation.status,
        expected_status=conversation.status,
        turns=1,
    )
    if written is None:  # the row is locked: it cannot have changed
        raise NotFound("Conversation not found")
    if joined_by is not None:
        answer: fastpath.WrittenMessage | Message = written.customer_message
    else:
        answer = written.answer if acknowledged is None else acknowledged
    return _turn_result(
        written,
        answer=answer,
        escalated=conversation.status == Conversation.Status.ESCALATED,
        agent_name=SYSTEM_AGENT_NAME,
        escalation_id=escalation_id,
        public_metadata={},
        reply_text=operator_has_it_text(joined_by) if joined_by is not None else None,
    )


def _acknowledgement_of(*, conversation: Conversation, escalation_id: int | None) -> Message | None:
    """The acknowledgement already written for this escalation, if any (one indexed lookup
    within the conversation; the key lives in the message's server-side metadata)."""
    if escalation_id is None:
        return None
    return (
        Message.objects.filter(
            conversation=conversation,
            role=Message.Role.SYSTEM,
            **{f"metadata__{ACKNOWLEDGES}": escalation_id},
        )
        .order_by("-seq")
        .first()
    )


def _turn_result(
    written: fastpath.Written,
    *,
    answer: fastpath.WrittenMessage | Message,
    escalated: bool,
    agent_name: str,
    escalation_id: int | None,
    public_metadata: dict[str, Any],
    reply_text: str | None = None,
) -> MessageSendResult:
    """`answer` is the message that answers the turn (the agent's reply, the acknowledgement);
    the customer's own message, with `reply_text`, when an operator who joined will answer."""
    return MessageSendResult(
        conversation_id=written.conversation_id,
        customer_message_id=written.customer_message.id,
        customer_message_seq=written.customer_message.seq,
        reply_id=answer.id,
        reply_seq=answer.seq,
        reply_text=answer.content if reply_text is None else reply_text,
        status="escalated" if escalated else "success",
        agent=agent_name,
        intent=answer.intent,
        confidence=answer.confidence,
        escalation_id=escalation_id,
        public_metadata=public_metadata,
        turn_count=written.turn_count,
    )


def _snapshot(customer: User, current: fastpath.AgentContext | None) -> ConversationSnapshot:
    if current is None:
        return ConversationSnapshot(
            id=None, customer_id=customer.pk, turn_count=0, recent_messages=()
        )
    return ConversationSnapshot(
        id=current.conversation_id,
        customer_id=customer.pk,
        turn_count=current.agent_turns,
        recent_messages=current.recent_messages,
    )


_RECORD_FIELDS = tuple(
    f.name for f in fields(MessageSendResult) if f.name not in ("replayed", "rate")
)


def _record_from_rest_body(body: dict[str, Any]) -> dict[str, Any]:
    """Records stored before results were domain objects held the REST body; they replay for
    24 h after an upgrade, so read them too."""
    metadata = dict(body["metadata"])
    for name in ("escalated", "escalation_id", "customer_message_id", "customer_message_seq"):
        metadata.pop(name, None)
    reply_seq = metadata.pop("seq")
    return {
        "conversation_id": body["conversation_id"],
        "customer_message_id": body["metadata"]["customer_message_id"],
        "customer_message_seq": body["metadata"]["customer_message_seq"],
        "reply_id": body["message_id"],
        "reply_seq": reply_seq,
        "reply_text": body["response"],
        "status": body["status"],
        "agent": body["agent"],
        "intent": body["intent"],
        "confidence": body["confidence"],
        "escalation_id": body["metadata"]["escalation_id"],
        "public_metadata": metadata,
        "turn_count": body["turn_count"],
    }
