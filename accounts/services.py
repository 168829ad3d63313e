"""Writes for identity and access: tokens, registration, API keys, security events."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.auth import API_KEY_PREFIX, Principal, api_key_hash
from accounts.models import (
    ApiKey,
    RevokedAccessToken,
    RevokedTokenFamily,
    SecurityEvent,
    SignInSession,
    User,
)
from accounts.scopes import (
    ALL_SCOPES,
    allowed_scopes,
    format_scopes,
    grant_scopes,
    parse_scope_string,
)
from accounts.security import security_event_record
from accounts.sessions import (
    session_over,
    session_password_carried,
    session_start,
    session_touch,
    sessions_revoke_others,
)
from accounts.signing import signing_backend
from accounts.socket_events import user_sockets_recheck_on_commit
from accounts.tokens import (
    AMR_CLAIM,
    FAMILY_CLAIM,
    SCOPE_CLAIM,
    ParleyRefreshToken,
    password_fingerprint,
    token_family,
    token_matches_password,
    token_user_id,
)
from accounts.usernames import (
    InvalidUsername,
    canonical_username_or_none,
    registrable_username,
)
from core.errors import (
    Conflict,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    UnprocessableRequest,
)
from core.request_context import CallContext

# --- Tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str

    def as_response(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


def user_authenticate(*, request: HttpRequest | None, username: str, password: str) -> User:
    """Check a username and password. Unknown users cost the same hashing time as known ones
    (Django's ModelBackend), so timing does not reveal which usernames exist."""
    user = authenticate(request, username=username, password=password)
    if user is None:
        security_event_record(
            kind=SecurityEvent.Kind.LOGIN_FAILED,
            request=request,
            # The canonical form (as the admin login records it): the name of the account
            # tried, whatever its spelling, so an erasure finds and scrubs it.
            detail={"username": canonical_username_or_none(username) or username[:150]},
        )
        raise NotAuthenticated("Invalid username or password", credentials_presented=False)
    return user  # type: ignore[return-value]


def token_pair_issue(
    *,
    user: User,
    requested_scopes: set[str] | None,
    family: str | None = None,
    amr: tuple[str, ...] = ("pwd",),
    request: HttpRequest | None = None,
) -> TokenPair:
    """A new refresh + access pair carrying requested ∩ allowed scopes and `amr` (how the
    sign-in was proven); a new token family — a session, recorded with the client's address
    and user agent — unless `family` (a rotation) says which one it continues."""
    scopes = grant_scopes(user, requested_scopes)
    refresh = ParleyRefreshToken.for_user_with_scopes(user, scopes, family=family, amr=amr)
    if family is None:
        session_start(
            user=user,
            family=refresh[FAMILY_CLAIM],
            amr=amr,
            expires_at=datetime_from_epoch(refresh["exp"]),
            ip=CallContext.from_request(request).ip if request is not None else None,
            user_agent=request.META.get("HTTP_USER_AGENT", "") if request is not None else "",
        )
    access = refresh.access_token
    lifetime = int(access.lifetime.total_seconds())  # type: ignore[union-attr]
    return TokenPair(
        access_token=str(access),
        refresh_token=str(refresh),
        expires_in=lifetime,
        scope=format_scopes(scopes),
    )


def token_refresh(*, raw_refresh: str, request: HttpRequest | None = None) -> TokenPair:
    """Rotate a refresh token: the old one is blacklisted, and the new pair stays in its family.

    Presenting a refresh token that was already rotated (or revoked) is reuse: someone holds a
    copy. The whole family is revoked (OAuth 2.0 Security BCP, refresh token reuse detection):
    its newest refresh token and every access token it issued stop working, so the thief and
    the client both have to sign in again, and only the owner can. Scopes carry over, narrowed
    to what the user's role allows now.
    """
    try:
        refresh = ParleyRefreshToken(raw_refresh)  # type: ignore[arg-type]
    except TokenError:
        reused = _signed_blacklisted_refresh(raw_refresh)
        if reused is not None:
            reused_family, reused_user_id = reused
            token_family_revoke(family=reused_family, user_id=reused_user_id, request=request)
        raise NotAuthenticated("Invalid or expired refresh token") from None
    subject = token_user_id(refresh.payload)
    user = User.objects.filter(pk=subject, is_active=True).first() if subject is not None else None
    if user is None or not (
        token_matches_password(refresh.payload, user)
        or session_password_carried(payload=refresh.payload, user=user)
    ):
        raise NotAuthenticated("Invalid or expired refresh token")
    family = refresh[FAMILY_CLAIM]
    if session_over(family=family):
        raise NotAuthenticated("Session expired: sign in again")
    with transaction.atomic():
        if RevokedTokenFamily.objects.filter(family=family).exists():
            raise NotAuthenticated("Invalid or expired refresh token")
        outstanding = OutstandingToken.objects.filter(jti=refresh["jti"]).first()
        if outstanding is None:
            raise NotAuthenticated("Invalid or expired refresh token")
        try:
            _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
        except IntegrityError:
            created = False
        if created:
            scopes = allowed_scopes(user) & parse_scope_string(refresh[SCOPE_CLAIM])
            pair = token_pair_issue(
                user=user,
                requested_scopes=set(scopes),
                family=family,
                amr=tuple(refresh[AMR_CLAIM]),
            )
            session_touch(
                family=family,
                expires_at=timezone.now() + ParleyRefreshToken.lifetime,
                ip=CallContext.from_request(request).ip if request is not None else None,
            )
            return pair
    # Blacklisted between our check and now: two clients raced with one refresh token, which
    # is reuse like any other (outside the transaction, so the revocation is kept).
    token_family_revoke(family=family, user_id=user.pk, request=request)
    raise NotAuthenticated("Invalid or expired refresh token")


def _signed_blacklisted_refresh(raw: str) -> tuple[str, int] | None:
    """(family, user id) of `raw` when it is a refresh token we signed (signature, expiry,
    issuer and audience verified) whose jti is blacklisted: a rotated token presented again.
    Else None."""
    try:
        payload = signing_backend().decode(raw, verify=True)  # type: ignore[arg-type]
    except (TokenBackendError, TokenError):
        return None
    jti, family, user_id = payload.get("jti"), token_family(payload), token_user_id(payload)
    if (
        payload.get("token_type") != "refresh"
        or not isinstance(jti, str)
        or family is None
        or user_id is None
    ):
        return None
    if not BlacklistedToken.objects.filter(token__jti=jti).exists():
        return None
    return family, user_id


def token_family_revoke(*, family: str, user_id: int, request: HttpRequest | None = None) -> None:
    """Refuse every refresh and access token of `family` from now on. Idempotent."""
    lifetime = ParleyRefreshToken.lifetime
    user = User.objects.filter(pk=user_id).first()
    created = False
    if user is not None:
        try:
            with transaction.atomic():
                _, created = RevokedTokenFamily.objects.get_or_create(
                    family=family[:64],
                    defaults={"user": user, "expires_at": timezone.now() + lifetime},
                )
        except IntegrityError:
            # The account was deleted meanwhile: with it went every token it could use.
            user = None
        SignInSession.objects.filter(family=family[:64], revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    # A deleted account (erased, or removed outside the erasure service) has no token left
    # that could authenticate: there is nothing to revoke, and no user to name in the event.
    security_event_record(
        kind=SecurityEvent.Kind.REFRESH_REUSED,
        request=request,
        user=user,
        detail={
            "family_revoked": user is not None,
            "already_revoked": user is not None and not created,
        },
    )


def token_revoke(
    *, principal: Principal, raw_refresh: str | None, request: HttpRequest | None = None
) -> None:
    """Revoke the presented access token until it expires and, if given and the caller's, the
    refresh token. An unknown or foreign refresh token is ignored (RFC 7009 §2.2)."""
    if principal.token_jti and principal.token_expires_at:
        RevokedAccessToken.objects.get_or_create(
            jti=principal.token_jti,
            defaults={"user": principal.user, "expires_at": principal.token_expires_at},
        )
    if raw_refresh:
        try:
            refresh = ParleyRefreshToken(raw_refresh)  # type: ignore[arg-type]
        except TokenError:
            refresh = None
        if refresh is not None and token_user_id(refresh.payload) == principal.user_id:
            refresh.blacklist()
    security_event_record(
        kind=SecurityEvent.Kind.TOKEN_REVOKED,
        request=request,
        user=principal.user,
        detail={"access_token": bool(principal.token_jti), "refresh_token": bool(raw_refresh)},
    )


def expired_tokens_prune(*, now: datetime | None = None) -> int:
    """Drop revocation rows and outstanding refresh tokens that have expired anyway."""
    now = now or timezone.now()
    revoked, _ = RevokedAccessToken.objects.filter(expires_at__lte=now).delete()
    outstanding, _ = OutstandingToken.objects.filter(expires_at__lte=now).delete()
    families, _ = RevokedTokenFamily.objects.filter(expires_at__lte=now).delete()
    sessions, _ = SignInSession.objects.filter(expires_at__lte=now).delete()
    return revoked + outstanding + families + sessions


# --- Password ---------------------------------------------------------------------------------


def password_check(*, user: User, password: str) -> bool:
    """Whether `password` is the user's (Django's hashers: constant time, upgraded on use)."""
    return bool(password) and user.check_password(password)


def password_confirm(
    *, user: User, password: str, purpose: str, context: CallContext | None = None
) -> None:
    """The password asked again before a sensitive change (`purpose`). A wrong one is a failed
    sign-in: recorded, and PermissionDenied (403); the caller counts it against the limits."""
    if not password_check(user=user, password=password):
        security_event_record(
            kind=SecurityEvent.Kind.LOGIN_FAILED,
            context=context,
            user=user,
            detail={"reason": f"wrong password for {purpose}"},
        )
        raise PermissionDenied("Wrong password")


def password_change(
    *,
    user: User,
    current_password: str,
    new_password: str,
    keep_family: str | None,
    context: CallContext | None = None,
) -> None:
    """Change the password. Wrong current password: PermissionDenied (the caller counts it
    against the sign-in limits). Django's validators apply (422). Every session but
    `keep_family`'s is revoked and its sockets told to close; tokens of that one session stay
    valid though they carry the old password's fingerprint (accounts.sessions)."""
    password_confirm(
        user=user, password=current_password, purpose="a password change", context=context
    )
    try:
        validate_password(new_password, user=user)
    except DjangoValidationError as exc:
        raise UnprocessableRequest(
            " ".join(exc.messages),
            loc=("body", "payload", "new_password"),
            type="password_invalid",
        ) from None
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        if keep_family is not None:
            SignInSession.objects.filter(
                user=user, family=keep_family, revoked_at__isnull=True
            ).update(password_fingerprint=password_fingerprint(user))
        security_event_record(kind=SecurityEvent.Kind.PASSWORD_CHANGED, context=context, user=user)
        sessions_revoke_others(
            user=user, keep_family=keep_family, context=context, reason="password changed"
        )
        # Sockets of tokens without a session row, and admin sessions, end too.
        user_sockets_recheck_on_commit(user.pk)


# --- Registration ---------------------------------------------------------------------------


def user_register(*, username: str, password: str, email: str) -> User:
    """Create a customer account under the canonical form of `username` (checked again here,
    after normalisation, whoever the caller), so the account can always sign in. Django's
    password validators apply."""
    try:
        username = registrable_username(username)
    except InvalidUsername as exc:
        raise UnprocessableRequest(str(exc), loc=("body", "payload", "username")) from None
    candidate = User(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise UnprocessableRequest(
            " ".join(exc.messages), loc=("body", "payload", "password"), type="password_invalid"
        ) from None
    if User.objects.filter(username=username).exists():
        raise Conflict("That username is already taken")
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, email=email, password=password)
    except IntegrityError:
        # Lost a race with another registration of the same name.
        raise Conflict("That username is already taken") from None


# --- API keys -------------------------------------------------------------------------------


def api_key_create(
    *,
    actor: User,
    name: str,
    owner_id: int,
    scopes: list[str],
    expires_at: datetime | None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never retrievable again."""
    owner = User.objects.filter(pk=owner_id).first()
    if owner is None:
        raise UnprocessableRequest("No user with this id", loc=("body", "payload", "owner_id"))
    if expires_at is not None and expires_at <= timezone.now():
        raise UnprocessableRequest(
            "expires_at must be in the future", loc=("body", "payload", "expires_at")
        )
    unknown = set(scopes) - set(ALL_SCOPES)
    if unknown:
        raise UnprocessableRequest(
            f"Unknown scopes: {', '.join(sorted(unknown))}", loc=("body", "payload", "scopes")
        )
    prefix = secrets.token_hex(6)
    raw = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(30)}"
    key = ApiKey.objects.create(
        name=name,
        owner=owner,
        prefix=prefix,
        key_hash=api_key_hash(raw),
        scopes=[s for s in ALL_SCOPES if s in scopes],
        expires_at=expires_at,
        created_by=actor,
    )
    return key, raw


def api_key_revoke(*, actor: User, api_key_id: int) -> ApiKey:
    """Revoke a key at once. Revoking a revoked key changes nothing (DELETE is idempotent)."""
    key = ApiKey.objects.filter(pk=api_key_id).first()
    if key is None:
        raise NotFound("API key not found")
    if key.revoked_at is None:
        ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        key.refresh_from_db()
        security_event_record(
            kind=SecurityEvent.Kind.TOKEN_REVOKED,
            user=actor,
            detail={"api_key_id": key.pk, "api_key_prefix": key.prefix},
        )
    return key
