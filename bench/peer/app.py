"""The peer application (see bench/peer/__init__.py). Per `POST /api/v1/messages/process`:

1. bearer JWT, HS256 only, with signature, `exp`, `iss`, `aud`, `jti`, `sub` and `token_type`
   checked (PyJWT) and the `messages:write` scope required;
2. the user row re-read together with the jti deny-list (one query): unknown, inactive or
   revoked → 401;
3. IDOR check: `customer_id` in the body must be the caller (`sub`), else 403;
4. in one transaction: the conversation row locked with `SELECT … FOR UPDATE`, filtered by id
   *and* owner (another customer's conversation → 404), two messages appended with the next
   per-conversation seqs, the conversation's counters updated, commit;
5. a typed pydantic response of the same shape as Parley's.

The reply is a trivial deterministic function: Parley runs its real rule-based agent, which the
profile puts under 2 % of its CPU. Not done here (Parley does them): the per-user rate limit
in Redis, the websocket push after commit, the password-change fingerprint in the token,
idempotency keys, escalation. `GET /api/v1/conversations/{id}/history?limit=50` reads the
latest messages of a conversation the caller owns (ownership in the query).

Configuration from the environment: PEER_DATABASE_URL (postgresql+asyncpg://…/parley_peer),
PEER_JWT_SIGNING_KEY, PEER_JWT_ISSUER, PEER_JWT_AUDIENCE, PEER_POOL_SIZE (24 per worker),
PEER_POOL_OVERFLOW (0).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import jwt
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from bench.peer.tables import Conversation, Message, RevokedToken, User

DATABASE_URL = os.environ.get(
    "PEER_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/parley_peer"
)
JWT_KEY = os.environ.get("PEER_JWT_SIGNING_KEY", "")
JWT_ISSUER = os.environ.get("PEER_JWT_ISSUER", "parley")
JWT_AUDIENCE = os.environ.get("PEER_JWT_AUDIENCE", "parley")
MAX_MESSAGE_CHARS = 4000
MAX_ID = 2**63 - 1

# A fixed pool (24 per worker: most of a worker's share of the benchmark's 64 connections,
# while both servers and other work stay under PostgreSQL's 100). With SQLAlchemy's overflow,
# connections beyond the pool are opened and closed under load (measured: backends kept
# starting during a 64-connection run), which costs the peer a PostgreSQL connection per
# overflowing request and hides those backends' CPU from the count.
engine = create_async_engine(
    DATABASE_URL,
    pool_size=int(os.environ.get("PEER_POOL_SIZE", "24")),
    max_overflow=int(os.environ.get("PEER_POOL_OVERFLOW", "0")),
)
Session = async_sessionmaker(engine, expire_on_commit=False)
bearer = HTTPBearer(auto_error=False)
app = FastAPI(title="parley-peer", docs_url=None, redoc_url=None, openapi_url=None)


# --- schemas --------------------------------------------------------------------------------


class ProcessIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(max_length=MAX_MESSAGE_CHARS * 2)
    customer_id: int = Field(ge=1, le=MAX_ID)
    conversation_id: int | None = Field(default=None, ge=0, le=MAX_ID)

    @field_validator("message")
    @classmethod
    def _clean(cls, value: str) -> str:
        value = value.replace("\r\n", "\n").strip()
        if not value or len(value) > MAX_MESSAGE_CHARS:
            raise ValueError(f"message must be 1..{MAX_MESSAGE_CHARS} characters")
        if any(ord(c) < 32 and c not in "\n\t" for c in value):
            raise ValueError("message must not contain control characters")
        return value


class ProcessOut(BaseModel):
    response: str
    status: Literal["success", "escalated"]
    conversation_id: int
    agent: str
    intent: str | None
    confidence: float | None = Field(ge=0, le=1)
    metadata: dict[str, Any]
    turn_count: int
    message_id: int


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    seq: int
    role: Literal["customer", "agent", "operator", "system"]
    content: str
    intent: str | None
    confidence: float | None
    created_at: datetime


class HistoryOut(BaseModel):
    conversation_id: int
    messages: list[MessageOut]
    has_more: bool


# --- auth -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    user_id: int
    scopes: frozenset[str]


async def session_dependency() -> AsyncIterator[AsyncSession]:
    async with Session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(session_dependency)]


def _unauthorized() -> HTTPException:
    return HTTPException(
        status_code=401,
        detail="Invalid or expired credentials",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def current_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized()
    try:
        payload = jwt.decode(
            credentials.credentials,
            JWT_KEY,
            algorithms=["HS256"],
            audience=JWT_AUDIENCE,
            issuer=JWT_ISSUER,
            options={"require": ["exp", "iat", "jti", "sub", "iss", "aud"]},
        )
    except jwt.InvalidTokenError:
        raise _unauthorized() from None
    sub, jti, scope = payload.get("sub"), payload.get("jti"), payload.get("scope", "")
    if (
        payload.get("token_type") != "access"
        or not isinstance(sub, str)
        or not sub.isdigit()
        or not isinstance(jti, str)
        or not isinstance(scope, str)
    ):
        raise _unauthorized()
    user_id = int(sub)
    row = (
        await session.execute(
            select(User.is_active, exists().where(RevokedToken.jti == jti)).where(
                User.id == user_id
            )
        )
    ).first()
    if row is None or not row[0] or row[1]:
        raise _unauthorized()
    return Principal(user_id=user_id, scopes=frozenset(scope.split()))


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def _require_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise HTTPException(status_code=403, detail=f"Missing scope {scope}")


# --- the agent ----------------------------------------------------------------------------------

ESCALATED_ACKNOWLEDGEMENT = (
    "Thanks, your message is with our support team. An operator will answer here shortly."
)


def trivial_reply(text: str) -> tuple[str, str, float]:
    """Deterministic stand-in for an agent: (reply, intent, confidence)."""
    return (
        "You can reset your password from the sign-in page: choose 'Forgot password' and "
        "follow the link we e-mail you.",
        "account",
        0.87,
    )


# --- routes ---------------------------------------------------------------------------------------


@app.post("/api/v1/messages/process", response_model=ProcessOut)
async def message_process(
    body: ProcessIn, principal: PrincipalDep, session: SessionDep
) -> ProcessOut:
    _require_scope(principal, "messages:write")
    if body.customer_id != principal.user_id:
        raise HTTPException(status_code=403, detail="You may only act on your own conversations")
    now = datetime.now(UTC)
    if body.conversation_id:
        conversation = (
            await session.execute(
                select(Conversation)
                .where(
                    Conversation.id == body.conversation_id,
                    Conversation.customer_id == principal.user_id,
                )
                .with_for_update()
            )
        ).scalar_one_or_none()
        if conversation is None:
            raise HTTPException(status_code=404, detail="Conversation not found")
    else:
        conversation = Conversation(
            customer_id=principal.user_id,
            status="active",
            turn_count=0,
            last_seq=0,
            created_at=now,
            updated_at=now,
        )
        session.add(conversation)
        await session.flush()
    escalated = conversation.status == "escalated"
    if escalated:
        text, intent, confidence, agent = ESCALATED_ACKNOWLEDGEMENT, None, None, "system"
    else:
        text, intent, confidence = trivial_reply(body.message)
        agent = "peer"
        conversation.status = "active"
    customer_message = Message(
        conversation_id=conversation.id,
        seq=conversation.last_seq + 1,
        role="customer",
        content=body.message,
        intent=intent,
        confidence=confidence,
        author_id=principal.user_id,
        metadata_={},
        created_at=now,
    )
    answer = Message(
        conversation_id=conversation.id,
        seq=conversation.last_seq + 2,
        role="system" if escalated else "agent",
        content=text,
        intent=intent,
        confidence=confidence,
        metadata_={},
        created_at=now,
    )
    conversation.last_seq += 2
    conversation.turn_count += 1
    conversation.updated_at = now
    session.add_all([customer_message, answer])
    await session.flush()
    await session.commit()
    return ProcessOut(
        response=answer.content,
        status="escalated" if escalated else "success",
        conversation_id=conversation.id,
        agent=agent,
        intent=intent,
        confidence=confidence,
        metadata={
            "escalated": escalated,
            "escalation_id": None,
            "customer_message_id": customer_message.id,
            "customer_message_seq": customer_message.seq,
            "seq": answer.seq,
        },
        turn_count=conversation.turn_count,
        message_id=answer.id,
    )


@app.get("/api/v1/conversations/{conversation_id}/history", response_model=HistoryOut)
async def conversation_history(
    conversation_id: int,
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HistoryOut:
    _require_scope(principal, "conversations:read")
    if not 1 <= conversation_id <= MAX_ID:
        raise HTTPException(status_code=404, detail="Conversation not found")
    rows = (
        (
            await session.execute(
                select(Message)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(
                    Message.conversation_id == conversation_id,
                    Conversation.customer_id == principal.user_id,
                )
                .order_by(Message.seq.desc())
                .limit(limit + 1)
            )
        )
        .scalars()
        .all()
    )
    if not rows:
        owned = await session.scalar(
            select(Conversation.id).where(
                Conversation.id == conversation_id, Conversation.customer_id == principal.user_id
            )
        )
        if owned is None:
            raise HTTPException(status_code=404, detail="Conversation not found")
    return HistoryOut(
        conversation_id=conversation_id,
        messages=[MessageOut.model_validate(m) for m in reversed(rows[:limit])],
        has_more=len(rows) > limit,
    )


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
