"""Writes for conversations. `message_send` is the one path for a customer's message, used by
`POST /messages/process` and the websocket alike."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.ratelimits import RateUsage, rate_limit_enforce
from core.errors import NotFound, UnprocessableRequest
from core.request_context import CallContext
from core.schemas import client_json
from messaging import fastpath, handoff, idempotency
from messaging.agent import (
    AgentReply,
    ConversationSnapshot,
    get_agent,
)
from messaging.events import (
    CONVERSATION_CREATED,
    MESSAGE_CREATED,
    domain_event_record,
    domain_events_record,
)
from messaging.models import Conversation, Message, is_possible_id
from messaging.realtime import (
    conversation_status_event,
    messages_created_event,
    publish_on_commit,
    run_in_background,
)
from messaging.schemas import ConversationOut, message_event_data, message_payload
from messaging.validation import clean_message_text

SYSTEM_AGENT_NAME = "system"
ESCALATED_ACKNOWLEDGEMENT = (
    "Thanks, your message is with our support team. An operator will answer here shortly."
)
# Message.metadata key marking the acknowledgement of an escalation (its id).
ACKNOWLEDGES = "acknowledges_escalation"


@dataclass
class NewMessage:
    role: str
    content: str
    intent: str | None = None
    confidence: float | None = None
    author: User | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


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
    """Append messages with the next seqs and push them to subscribers after commit.

    The caller holds the conversation's lock (`conversation_lock`) inside a transaction and
    saves the conversation afterwards (`conversation_save`).
    """
    now = timezone.now()
    rows = []
    for new in messages:
        conversation.last_seq += 1
        rows.append(
            Message(
                conversation=conversation,
                seq=conversation.last_seq,
                role=new.role,
                content=new.content,
                intent=new.intent,
                confidence=new.confidence,
                author=new.author,
                metadata=new.metadata,
                created_at=now,
            )
        )
    Message.objects.bulk_create(rows)
    conversation.updated_at = now
    payloads = [message_payload(row) for row in rows]
    publish_on_commit([messages_created_event(conversation.pk, payloads)])
    # Webhooks: every appended message, whatever its role, in this transaction (one write).
    domain_events_record(
        [
            (
                MESSAGE_CREATED,
                message_event_data(
                    payload,
                    conversation_id=conversation.pk,
                    customer_id=conversation.customer_id,
                ),
            )
            for payload in payloads
        ]
    )
    return rows


def conversation_save(
    *, conversation: Conversation, status_changed: bool = False, escalation_id: int | None = None
) -> None:
    conversation.save(
        update_fields=["status", "turn_count", "agent_turns", "last_seq", "updated_at"]
    )
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
    return rate_limit_enforce(
        group="messages:user",
        key=str(user.pk),
        rate=settings.RATE_LIMIT_MESSAGES,
        user=user,
        path=context.path if context else None,
        ip=context.ip if context else None,
    )


def message_send(
    *,
    customer: User,
    conversation_id: int | None,
    text: str,
    idempotency_key: str | None = None,
    context: CallContext | None = None,
) -> MessageSendResult:
    """Store a customer's message and the reply in one transaction, and push both live.

    `conversation_id` None or 0 starts a new conversation; another customer's conversation is
    "not found" (404), like a missing one. While the conversation is escalated the agent stays
    silent and the reply is a system acknowledgement. When the agent asks for a human, a
    hand-off is opened in the same transaction (messaging.handoff). Rate limited per user;
    with an idempotency key a repeat replays the first result and writes nothing.
    """
    rate = message_rate_limit_enforce(user=customer, context=context)
    try:
        text = clean_message_text(text)
    except ValueError as exc:
        raise UnprocessableRequest(str(exc), loc=("body", "message")) from None
    conversation_id = conversation_id or None

    if idempotency_key is None:
        result = _message_send_claimed(
            customer=customer, conversation_id=conversation_id, text=text, claim=None
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
            customer=customer, conversation_id=conversation_id, text=text, claim=claim
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
) -> MessageSendResult:
    current: fastpath.AgentContext | None = None
    if conversation_id is not None:
        # What selectors.conversation_with_recent_messages gave the turn, as one fixed
        # statement and without model instances: status, agent turns, the last messages.
        current = fastpath.agent_context(customer_id=customer.pk, conversation_id=conversation_id)
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

    if (
        current is not None
        and current.status == Conversation.Status.ACTIVE
        and reply is not None
        and not reply.escalate
    ):
        # The common turn: the agent answered an active conversation. None when the
        # conversation changed status or vanished since it was read; then the general path
        # below decides, exactly as it would have.
        fast = _fast_turn(
            conversation_id=current.conversation_id,
            customer=customer,
            text=text,
            reply=reply,
            agent_name=agent.name,
            claim=claim,
        )
        if fast is not None:
            return fast

    # Inside a keyed send's transaction (the claim's) this adds no savepoint.
    with transaction.atomic(savepoint=claim is None):
        conversation: Conversation | None
        if current is None:
            conversation = Conversation.objects.create(customer=customer)
            domain_event_record(CONVERSATION_CREATED, conversation_event_data(conversation))
        else:
            # The row as it is now, locked: everything below reads this, not `current`.
            conversation = conversation_lock(conversation_id=current.conversation_id)
            if conversation is None:  # deleted since we read it
                raise NotFound("Conversation not found")
        result = _record_turn(
            conversation=conversation,
            customer=customer,
            text=text,
            reply=reply,
            agent_name=agent.name,
        )
        if claim is not None:
            idempotency.idempotency_complete(claim=claim, status=200, body=result.to_record())
    return result


def _fast_turn(
    *,
    conversation_id: int,
    customer: User,
    text: str,
    reply: AgentReply,
    agent_name: str,
    claim: idempotency.Claim | None,
) -> MessageSendResult | None:
    """`_record_turn`'s agent branch for an active conversation, with the lock, both INSERTs,
    the UPDATE and the message.created events as one statement (messaging.fastpath.turn_write).
    Same rows, seqs, events, pushes after commit and idempotency record as the general path.

    Without an idempotency claim no transaction is opened around it: on PostgreSQL the one
    statement is its own transaction (no BEGIN and COMMIT round trips). With a claim, the
    record completes in the claim's transaction, with the turn."""
    with transaction.atomic(savepoint=False) if claim is not None else nullcontext():
        written = fastpath.turn_write(
            conversation_id=conversation_id,
            customer_id=customer.pk,
            text=text,
            reply_text=reply.text,
            intent=reply.intent,
            confidence=reply.confidence,
            metadata=dict(reply.metadata),
        )
        if written is None:  # nothing written: not active (any more), or gone
            return None
        publish_on_commit([messages_created_event(conversation_id, written.payloads)])
        result = MessageSendResult(
            conversation_id=conversation_id,
            customer_message_id=written.customer_message.id,
            customer_message_seq=written.customer_message.seq,
            reply_id=written.answer.id,
            reply_seq=written.answer.seq,
            reply_text=written.answer.content,
            status="success",
            agent=agent_name,
            intent=written.answer.intent,
            confidence=written.answer.confidence,
            escalation_id=None,
            public_metadata=dict(reply.metadata),
            turn_count=written.turn_count,
        )
        if claim is not None:
            idempotency.idempotency_complete(claim=claim, status=200, body=result.to_record())
    return result


def _record_turn(
    *,
    conversation: Conversation,
    customer: User,
    text: str,
    reply: AgentReply | None,
    agent_name: str,
) -> MessageSendResult:
    previous_status = conversation.status
    conversation.turn_count += 1
    escalated = previous_status == Conversation.Status.ESCALATED
    if escalated or reply is None:
        # An operator has the conversation (possibly only since the agent was asked). The
        # acknowledgement enters the transcript once per escalation; later messages answer
        # with that same message instead of repeating it.
        escalation_id = handoff.handoff_current_id(conversation=conversation)
        acknowledged = _acknowledgement_of(conversation=conversation, escalation_id=escalation_id)
        new_messages = [NewMessage(role=Message.Role.CUSTOMER, content=text, author=customer)]
        if acknowledged is None:
            new_messages.append(
                NewMessage(
                    role=Message.Role.SYSTEM,
                    content=ESCALATED_ACKNOWLEDGEMENT,
                    metadata={ACKNOWLEDGES: escalation_id},
                )
            )
        appended = conversation_append(conversation=conversation, messages=new_messages)
        conversation_save(conversation=conversation)
        return _turn_result(
            conversation=conversation,
            customer_message=appended[0],
            answer=appended[1] if acknowledged is None else acknowledged,
            agent_name=SYSTEM_AGENT_NAME,
            escalation_id=escalation_id,
            public_metadata={},
        )

    if previous_status == Conversation.Status.RESOLVED:
        # The customer wrote again after an operator resolved: back to the agent.
        conversation.status = Conversation.Status.ACTIVE
    conversation.agent_turns += 1
    customer_message, answer = conversation_append(
        conversation=conversation,
        messages=[
            NewMessage(
                role=Message.Role.CUSTOMER,
                content=text,
                intent=reply.intent,
                confidence=reply.confidence,
                author=customer,
            ),
            NewMessage(
                role=Message.Role.AGENT,
                content=reply.text,
                intent=reply.intent,
                confidence=reply.confidence,
                metadata=dict(reply.metadata),
            ),
        ],
    )
    escalation_id = None
    if reply.escalate:
        escalation_id = handoff.handoff_open(
            conversation=conversation,
            reason=reply.escalation_reason or f"Agent escalated ({reply.intent})",
            intent=reply.intent,
            confidence=reply.confidence,
        )
    else:
        conversation_save(
            conversation=conversation,
            status_changed=conversation.status != previous_status,
        )
    return _turn_result(
        conversation=conversation,
        customer_message=customer_message,
        answer=answer,
        agent_name=agent_name,
        escalation_id=escalation_id,
        public_metadata=dict(reply.metadata),
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
    *,
    conversation: Conversation,
    customer_message: Message,
    answer: Message,
    agent_name: str,
    escalation_id: int | None,
    public_metadata: dict[str, Any],
) -> MessageSendResult:
    escalated = conversation.status == Conversation.Status.ESCALATED
    return MessageSendResult(
        conversation_id=conversation.pk,
        customer_message_id=customer_message.pk,
        customer_message_seq=customer_message.seq,
        reply_id=answer.pk,
        reply_seq=answer.seq,
        reply_text=answer.content,
        status="escalated" if escalated else "success",
        agent=agent_name,
        intent=answer.intent,
        confidence=answer.confidence,
        escalation_id=escalation_id,
        public_metadata=public_metadata,
        turn_count=conversation.turn_count,
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
