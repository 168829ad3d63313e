"""Who is calling, and may they? One module for REST (django-ninja) and websockets.

A caller proves identity with an access token (`Authorization: Bearer`) or an API key
(`X-API-Key`); nothing else counts on the API — not the admin's session cookie, not a token in the
query string. Every request re-reads the user, so deactivation, demotion and password changes
apply at once. Routes declare their policy with `Customer(...)`, `Staff(...)` or
`Superuser(...)` (or `authenticators(<Policy>)`); `tests/security/test_route_policy.py` fails for
any route that does not. `Policy.enforce` takes a `CallContext`, not a request, so the websocket
consumers (accounts.sockets) enforce the very same Policy objects.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from django.conf import settings
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from ninja.security import APIKeyHeader, HttpBearer
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts.fastauth import ReadAlong, user_with_revocation
from accounts.models import ApiKey, SecurityEvent, User
from accounts.operators import is_operator
from accounts.scopes import (
    SCOPE_DESCRIPTIONS,
    allowed_scopes,
    parse_scope_string,
    without_staff_scopes,
)
from accounts.security import security_event_record
from accounts.sessions import session_password_carried
from accounts.signing import KeyringTokenBackend, signing_backend
from accounts.tokens import (
    AMR_CLAIM,
    FAMILY_CLAIM,
    SCOPE_CLAIM,
    ParleyAccessToken,
    token_expiry,
    token_matches_password,
    token_user_id,
)
from core.errors import InsufficientScope, NotAuthenticated, PermissionDenied
from core.request_context import CallContext

logger = logging.getLogger("parley.security")

API_KEY_PREFIX = "prl_"
MAX_TOKEN_CHARS = 4096


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: the *current* user row and the scopes in force right now."""

    user: User
    scopes: frozenset[str]
    method: str  # "jwt" | "api_key"
    token_jti: str | None = None
    token_expires_at: datetime | None = None
    api_key_id: int | None = None
    # The token's refresh family (its session, accounts.sessions) and how its sign-in was
    # proven (`amr`: ("pwd",) or ("pwd", "otp")); for the admin's live channel, the admin
    # session's. None for API keys, which are issued by superusers and keep their own rules.
    token_family: str | None = None
    amr: tuple[str, ...] | None = None

    @property
    def user_id(self) -> int:
        return self.user.pk

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


def read_along_of(request: HttpRequest) -> ReadAlong | None:
    """What the route's read (BearerAuth's `read_along`) found in the token lookup's
    statement; None when the caller did not authenticate with a bearer token, or the route
    made no read."""
    return getattr(request, "_parley_read_along", None)


def principal_of(request: HttpRequest) -> Principal:
    """The caller of an authenticated API operation. Never `request.user`: that is the admin
    session's user, which authenticates nothing on the API."""
    return request.auth  # type: ignore[attr-defined,no-any-return]


# --- Credential checks (shared by REST and websocket) ------------------------------------------


@functools.lru_cache(maxsize=4096)
def _verified_access_payload(raw: str, backend: KeyringTokenBackend) -> Mapping[str, Any]:
    """The claims of a valid access token: signature, algorithm, issuer, audience, type and
    Parley's own claim checks (accounts.tokens), or TokenError.

    Cached per process (bounded; a client reuses its access token for minutes, and decoding it
    was ~4 % of a message's CPU): of those checks only expiry depends on the clock, and the
    caller checks it on every use. A failure is never cached. The entry is keyed by the backend
    too, which is built per configured key list (accounts.signing): once a key is retired, no
    token it signed is answered from here. Revocation, the user's state and the password
    fingerprint are read from the database on every request regardless."""
    return MappingProxyType(ParleyAccessToken(raw).payload)  # type: ignore[arg-type]


def _leeway_seconds() -> float:
    leeway = jwt_settings.LEEWAY
    return leeway.total_seconds() if isinstance(leeway, timedelta) else float(leeway)


# A route's read that travels in its token lookup (accounts.fastauth.ReadAlong), made from the
# request and the token's user id once the token itself checked out; None: nothing to read.
ReadAlongFactory = Callable[[HttpRequest, int], "ReadAlong | None"]


def principal_from_access_token(
    raw: str, along: Callable[[int], ReadAlong | None] | None = None
) -> Principal:
    """Validate an access token and load its user in one query (with `along(user_id)`'s read
    in it, when given). Raises NotAuthenticated."""
    if not isinstance(raw, str) or not raw.isascii() or len(raw) > MAX_TOKEN_CHARS:
        # A JWT is short ASCII; anything else (a lone surrogate from a websocket frame, a
        # megabyte header) is refused before the JWT library sees it.
        raise NotAuthenticated("Invalid token: not a JWT")
    try:
        payload = _verified_access_payload(raw, signing_backend())
    except TokenError as exc:
        raise NotAuthenticated(f"Invalid token: {exc}") from None
    if payload["exp"] <= time.time() - _leeway_seconds():
        raise NotAuthenticated("Invalid token: Token is expired")
    jti = payload["jti"]
    # One fixed statement (accounts.fastauth): the user, and whether this token or its refresh
    # family was revoked. Built once per process, not compiled by the ORM per request.
    user_id = token_user_id(payload)  # never None after the checks above: mypy's sake
    found = (
        user_with_revocation(
            user_id=user_id,
            jti=jti,
            family=payload[FAMILY_CLAIM],
            along=along(user_id) if along is not None else None,
        )
        if user_id is not None
        else None
    )
    if found is None or not found[0].is_active:
        raise NotAuthenticated("Invalid token: unknown or inactive user")
    user, revoked = found
    if revoked:
        raise NotAuthenticated("Invalid token: revoked")
    if not token_matches_password(payload, user) and not session_password_carried(
        payload=payload, user=user
    ):
        raise NotAuthenticated("Invalid token: issued before the last password change")
    amr = tuple(payload[AMR_CLAIM])
    scopes = allowed_scopes(user) & parse_scope_string(payload[SCOPE_CLAIM])
    if user.is_staff and "otp" not in amr and settings.STAFF_MFA_REQUIRED:
        # Read from the token, no query: a staff token signed in without the second factor
        # keeps only what any account may do (reading every conversation is staff work).
        scopes = without_staff_scopes(scopes)
    return Principal(
        user=user,
        scopes=scopes,
        method="jwt",
        token_jti=jti,
        token_expires_at=token_expiry(payload),
        token_family=payload[FAMILY_CLAIM],
        amr=amr,
    )


def api_key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# `prl_<hex prefix>_<urlsafe secret>`: checked before the prefix reaches a query, so a header
# holding NUL or other text the database refuses is a 401, never a DataError.
_API_KEY_SHAPE = re.compile(r"prl_([0-9a-f]{1,16})_[A-Za-z0-9_-]{1,180}")


def api_key_prefix(raw: str) -> str | None:
    """`prl_<prefix>_<secret>` → prefix, or None when the key is not shaped like ours."""
    match = _API_KEY_SHAPE.fullmatch(raw)
    return match.group(1) if match else None


def principal_from_api_key(raw: str) -> Principal:
    """Validate an API key, record its use, and act as its owner. Raises NotAuthenticated."""
    prefix = api_key_prefix(raw)
    key = ApiKey.objects.select_related("owner").filter(prefix=prefix).first() if prefix else None
    if key is None or not constant_time_compare(key.key_hash, api_key_hash(raw)):
        raise NotAuthenticated("Invalid API key")
    now = timezone.now()
    if not key.is_usable(now):
        raise NotAuthenticated("API key revoked or expired")
    if not key.owner.is_active:
        raise NotAuthenticated("API key owner is inactive")
    # Count the use in the database (F-expression): correct under concurrent requests.
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=now, use_count=F("use_count") + 1)
    return Principal(
        user=key.owner,
        scopes=allowed_scopes(key.owner) & frozenset(key.scopes),
        method="api_key",
        api_key_id=key.pk,
    )


# --- Policies -----------------------------------------------------------------------------------


class Tier(enum.Enum):
    CUSTOMER = "customer"  # any active account
    STAFF = "staff"  # operators (accounts.operators.is_operator): staff routes and sockets
    SUPERUSER = "superuser"


_STAFF_OUTSIDE_THE_GROUP = "This action is for operators only (staff in the Operators group)"


@dataclass(frozen=True)
class Policy:
    tier: Tier
    scopes: tuple[str, ...]
    # False only for the API-wide default: a route that forgot its policy is still locked, and
    # the route-policy test names it.
    declared: bool = True

    def enforce(self, principal: Principal, context: CallContext | None = None) -> None:
        """Tier first (on the user's current flags), then scopes. The one check for every
        door: the REST auth classes pass `CallContext.from_request`, the websocket consumers
        `CallContext.from_scope`; a refusal is recorded as a security event either way."""
        user = principal.user
        if (self.tier is Tier.STAFF and not is_operator(user)) or (
            self.tier is Tier.SUPERUSER and not user.is_superuser
        ):
            security_event_record(
                kind=SecurityEvent.Kind.TIER_DENIED,
                context=context,
                user=user,
                detail={"required": self.tier.value},
            )
            raise PermissionDenied(
                _STAFF_OUTSIDE_THE_GROUP
                if self.tier is Tier.STAFF and user.is_staff
                else f"This action is for {self.tier.value} accounts only"
            )
        if (
            self.tier is not Tier.CUSTOMER
            and principal.amr is not None
            and "otp" not in principal.amr
            and settings.STAFF_MFA_REQUIRED
        ):
            # The amr comes from the token (or the admin session): no query. Customer routes
            # never get here, so the message route pays nothing for it.
            security_event_record(
                kind=SecurityEvent.Kind.TIER_DENIED,
                context=context,
                user=user,
                detail={"required": self.tier.value, "reason": "second factor required"},
            )
            raise PermissionDenied(
                "Staff and superuser actions need a sign-in with a second factor "
                "(POST /auth/token/mfa)"
            )
        for scope in self.scopes:
            if not principal.has_scope(scope):
                security_event_record(
                    kind=SecurityEvent.Kind.SCOPE_DENIED,
                    context=context,
                    user=user,
                    detail={"required": scope},
                )
                raise InsufficientScope(scope)


class BearerAuth(HttpBearer):
    """`Authorization: Bearer <access token>`. Documented as OAuth2 password flow so the docs'
    Authorize button can fetch a token from /api/v1/auth/token.

    `read_along`: a route's read to run in the token lookup's statement; its result is the
    operation's through `read_along_of(request)` once the caller is authenticated."""

    openapi_type = "oauth2"
    openapi_flows = {"password": {"tokenUrl": "/api/v1/auth/token", "scopes": SCOPE_DESCRIPTIONS}}

    def __init__(self, policy: Policy, read_along: ReadAlongFactory | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.read_along = read_along

    def __call__(self, request: HttpRequest) -> Principal | None:
        # META directly: request.headers would build a dict of every header (~1 % of a
        # message's CPU in the profile) to read this one.
        header = request.META.get("HTTP_AUTHORIZATION")
        if header is None:
            return None  # let X-API-Key have its turn; neither present → 401 from the API
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            _auth_failed(request, "Authorization header is not 'Bearer <token>'")
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> Principal:
        made: list[ReadAlong] = []  # the route's read, once the token's user id is known

        def read_along(user_id: int) -> ReadAlong | None:
            along = self.read_along(request, user_id) if self.read_along else None
            if along is not None:
                made.append(along)
            return along

        try:
            principal = principal_from_access_token(token, read_along)
        except NotAuthenticated as exc:
            _auth_failed(request, exc.detail)
        self.policy.enforce(principal, CallContext.from_request(request))
        # Handed on only once the caller passed every check above.
        request._parley_read_along = made[0] if made else None  # type: ignore[attr-defined]
        return principal


class ApiKeyAuth(APIKeyHeader):
    """`X-API-Key: prl_…`, accepted wherever a bearer token is."""

    param_name = "X-API-Key"

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        if key is None:
            return None
        try:
            principal = principal_from_api_key(key.strip())
        except NotAuthenticated as exc:
            _auth_failed(request, exc.detail, kind=SecurityEvent.Kind.API_KEY_FAILED)
        self.policy.enforce(principal, CallContext.from_request(request))
        return principal


def _auth_failed(
    request: HttpRequest, reason: str, *, kind: str = SecurityEvent.Kind.AUTH_FAILED
) -> Any:
    security_event_record(kind=kind, request=request, detail={"reason": reason})
    # Clients learn only that the credentials were refused, not which check failed.
    raise NotAuthenticated("Invalid or expired credentials")


def authenticators(
    policy: Policy, *, read_along: ReadAlongFactory | None = None
) -> list[BearerAuth | ApiKeyAuth]:
    """A route's `auth=` for a Policy object: the websocket consumers enforce the same objects
    (e.g. messaging.permissions.MESSAGE_WRITERS), so REST and sockets cannot drift apart.
    `read_along`: see BearerAuth (an API key's lookup carries nothing)."""
    return [BearerAuth(policy, read_along), ApiKeyAuth(policy)]


def _policy(
    tier: Tier, scopes: list[str] | tuple[str, ...], *, declared: bool = True
) -> list[BearerAuth | ApiKeyAuth]:
    return authenticators(Policy(tier=tier, scopes=tuple(scopes), declared=declared))


def Undeclared() -> list[BearerAuth | ApiKeyAuth]:  # noqa: N802
    """The NinjaAPI default: authenticated, no scope. Routes must declare their own policy."""
    return _policy(Tier.CUSTOMER, (), declared=False)


def Customer(scopes: list[str] | tuple[str, ...] = ()) -> list[BearerAuth | ApiKeyAuth]:  # noqa: N802
    """Any active account holding `scopes`."""
    return _policy(Tier.CUSTOMER, scopes)


def Staff(scopes: list[str] | tuple[str, ...] = ()) -> list[BearerAuth | ApiKeyAuth]:  # noqa: N802
    """Operators (`accounts.operators.is_operator`, on the current flags) holding `scopes`."""
    return _policy(Tier.STAFF, scopes)


def Superuser(scopes: list[str] | tuple[str, ...] = ()) -> list[BearerAuth | ApiKeyAuth]:  # noqa: N802
    """Superusers (current is_superuser) holding `scopes`."""
    return _policy(Tier.SUPERUSER, scopes)


def policy_of(auth_callbacks: Any) -> Policy | None:
    """The declared policy of a ninja operation, for the route-policy test and the schema."""
    policies = {getattr(cb, "policy", None) for cb in auth_callbacks or []}
    policies.discard(None)
    return policies.pop() if len(policies) == 1 else None
