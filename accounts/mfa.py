"""The second factor: TOTP (RFC 6238) with single-use recovery codes (docs/security.md).

pyotp computes the codes (SHA-1, 6 digits, 30 s steps); everything around it is here: the
step window (one step of drift either way), replay refusal (a code — and any code of an
earlier step — is accepted once, by a conditional UPDATE that two racing requests cannot both
win), the `mfa_token` of a sign-in waiting for its code, and the throttles. The only throttles
are the sign-in limits (RATE_LIMIT_LOGIN per client IP and per username, which wrong codes
spend) and the five wrong codes an `mfa_token` survives; nothing else locks a factor, so a
right code within those limits is accepted.

Every door uses these services: the API (accounts.api), the admin's sign-in and enrolment
pages (config.admin_site, accounts.admin_mfa) and the superuser's reset (accounts.admin).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyotp
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts.models import RecoveryCode, SecurityEvent, TotpDevice, User
from accounts.security import cache_count, security_event_record
from accounts.sessions import sessions_revoke_others
from accounts.socket_events import user_sockets_recheck_on_commit
from accounts.tokens import password_fingerprint
from core.errors import Conflict, NotAuthenticated, ParleyError, PermissionDenied
from core.request_context import CallContext

TOTP_DIGITS = 6
TOTP_STEP_SECONDS = 30
TOTP_DRIFT_STEPS = 1
TOTP_ISSUER = "Parley"
RECOVERY_CODE_COUNT = 10
# 28 characters of a 32-letter alphabet: 140 bits. At 112 bits or more a plain SHA-256 is an
# adequate store (ASVS 6.5.2), and every unguessable value here has at least 128 (ASVS 11.5.1).
RECOVERY_CODE_CHARS = 28
RECOVERY_CODE_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
MFA_TOKEN_TTL_SECONDS = 300
MFA_TOKEN_MAX_FAILURES = 5
MAX_CODE_CHARS = 64
_CHALLENGE_CACHE_PREFIX = "mfa-challenge:"
_MFA_FAILURES_PREFIX = "mfa-challenge-failures:"


class InvalidCode(ParleyError):
    """A wrong code where the caller is already authenticated (confirming an enrolment)."""

    status_code = 400
    default_detail = "Invalid code"


class SecondFactorRequired(NotAuthenticated):
    """401 from POST /auth/token: the password was right, the code comes next."""

    def __init__(self, mfa_token: str) -> None:
        super().__init__("Second factor required", credentials_presented=False)
        self.mfa_token = mfa_token

    def body_extra(self) -> dict[str, Any]:
        return {"mfa_required": True, "mfa_token": self.mfa_token}


class EnrolmentRequired(PermissionDenied):
    """403 from POST /auth/token: staff without a second factor while one is required."""

    default_detail = (
        "Staff accounts must enrol a second factor before signing in: sign in to the admin "
        "to set one up"
    )

    def body_extra(self) -> dict[str, Any]:
        return {"mfa_enrolment_required": True}


# --- Who needs what -------------------------------------------------------------------------


def mfa_required_for(user: User) -> bool:
    """Staff and superusers need a second factor while STAFF_MFA_REQUIRED is on."""
    return bool(settings.STAFF_MFA_REQUIRED and (user.is_staff or user.is_superuser))


def confirmed_device(user: User) -> TotpDevice | None:
    return TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).first()


def has_confirmed_factor(user: User) -> bool:
    return TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()


def mfa_status(user: User) -> dict[str, Any]:
    """`GET /auth/me`'s "mfa": whether TOTP is on and how many recovery codes are unused."""
    return {
        "totp": has_confirmed_factor(user),
        "recovery_codes_left": RecoveryCode.objects.filter(user=user, used_at__isnull=True).count(),
    }


# --- Codes ----------------------------------------------------------------------------------


def totp_for(device: TotpDevice) -> pyotp.TOTP:
    return pyotp.TOTP(device.secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)


def totp_uri(*, user: User, secret: str) -> str:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS).provisioning_uri(
        name=user.get_username(), issuer_name=TOTP_ISSUER
    )


def _totp_accept(device: TotpDevice, code: str, *, now: datetime | None = None) -> bool:
    """Accept a TOTP code of the current step or one step either side, once: the step is
    recorded by a conditional UPDATE, so the same code again (or an earlier step's) fails, and
    of two racing requests with one code exactly one wins."""
    if len(code) != TOTP_DIGITS or not (code.isascii() and code.isdigit()):
        return False
    totp = totp_for(device)
    current = totp.timecode(now or timezone.now())
    matched = None
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        # Every candidate is compared (no early exit), in constant time.
        if constant_time_compare(totp.generate_otp(step), code):
            matched = step
    if matched is None:
        return False
    updated = (
        TotpDevice.objects.filter(pk=device.pk)
        .filter(Q(last_used_step__isnull=True) | Q(last_used_step__lt=matched))
        .update(last_used_step=matched)
    )
    if updated:
        device.last_used_step = matched
    return updated == 1


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _normalised_recovery_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


def _recovery_accept(user: User, code: str) -> bool:
    normalised = _normalised_recovery_code(code)
    if not normalised.isascii() or not normalised.isalnum():
        return False
    used = RecoveryCode.objects.filter(
        user=user, code_hash=_recovery_hash(normalised), used_at__isnull=True
    ).update(used_at=timezone.now())
    return used == 1


def factor_verify(user: User, code: Any) -> bool:
    """A current TOTP code of the user's confirmed device, or one of their unused recovery
    codes (used up by this call). False for anything else, including non-strings."""
    if not isinstance(code, str) or not 0 < len(code) <= MAX_CODE_CHARS:
        return False
    code = code.strip()
    device = confirmed_device(user)
    if device is None:
        return False
    if len(code) == TOTP_DIGITS and code.isascii() and code.isdigit():
        return _totp_accept(device, code)
    return _recovery_accept(user, code)


def _new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with ten new ones; returns them (shown once)."""
    codes: list[str] = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(RECOVERY_CODE_ALPHABET) for _ in range(RECOVERY_CODE_CHARS))
        codes.append("-".join(raw[i : i + 4] for i in range(0, len(raw), 4)))
    RecoveryCode.objects.filter(user=user).delete()
    RecoveryCode.objects.bulk_create(
        RecoveryCode(user=user, code_hash=_recovery_hash(_normalised_recovery_code(code)))
        for code in codes
    )
    return codes


# --- Enrolment ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str


def totp_enrolment_start(*, user: User) -> Enrolment:
    """A new secret for `user`, not active until confirmed (a pending one is replaced).
    Conflict when a confirmed factor exists: disable it first. The caller has checked the
    password (API) or the admin session."""
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().filter(user=user).first()
        if device is not None and device.is_confirmed:
            raise Conflict("A second factor is already enabled; disable it first")
        secret = pyotp.random_base32()  # 32 characters: 160 bits, RFC 4226's recommendation
        if device is None:
            TotpDevice.objects.create(user=user, secret=secret)
        else:
            device.secret = secret
            device.created_at = timezone.now()
            device.last_used_step = None
            device.save(update_fields=["secret", "created_at", "last_used_step"])
    return Enrolment(secret=secret, otpauth_uri=totp_uri(user=user, secret=secret))


def pending_enrolment(user: User) -> TotpDevice | None:
    return TotpDevice.objects.filter(user=user, confirmed_at__isnull=True).first()


def totp_enrolment_confirm(
    *,
    user: User,
    code: Any,
    keep_family: str | None,
    context: CallContext | None = None,
) -> list[str]:
    """Activate the pending secret with a code from it. Returns the ten recovery codes (shown
    once). Every session but `keep_family`'s is revoked: whoever held them signed in without
    the factor. Conflict when nothing is pending; InvalidCode for a wrong code."""
    device = pending_enrolment(user)
    if device is None:
        raise Conflict("No enrolment is pending: POST /auth/mfa/totp first")
    if not isinstance(code, str) or not _totp_accept(device, code.strip()):
        security_event_record(
            kind=SecurityEvent.Kind.MFA_FAILED,
            context=context,
            user=user,
            detail={"stage": "enrolment"},
        )
        raise InvalidCode()
    with transaction.atomic():
        confirmed = TotpDevice.objects.filter(pk=device.pk, confirmed_at__isnull=True).update(
            confirmed_at=timezone.now()
        )
        if not confirmed:
            raise Conflict("No enrolment is pending: POST /auth/mfa/totp first")
        codes = _new_recovery_codes(user)
        security_event_record(kind=SecurityEvent.Kind.MFA_ENABLED, context=context, user=user)
        sessions_revoke_others(
            user=user, keep_family=keep_family, context=context, reason="second factor enabled"
        )
        user_sockets_recheck_on_commit(user.pk)
    return codes


def totp_disable(*, user: User, code: Any, context: CallContext | None = None) -> None:
    """Turn the factor off (the caller has checked the password). Conflict for staff while it
    is required, or when none is enabled; PermissionDenied for a wrong code."""
    if mfa_required_for(user):
        raise Conflict("Staff accounts must keep their second factor")
    if not has_confirmed_factor(user):
        raise Conflict("No second factor is enabled")
    if not factor_verify(user, code):
        security_event_record(
            kind=SecurityEvent.Kind.MFA_FAILED,
            context=context,
            user=user,
            detail={"stage": "disable"},
        )
        raise PermissionDenied("Wrong password or code")
    with transaction.atomic():
        TotpDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        security_event_record(kind=SecurityEvent.Kind.MFA_DISABLED, context=context, user=user)


def mfa_reset(*, actor: User, user: User, context: CallContext | None = None) -> None:
    """A superuser removes another user's factor (a lost phone). Every session of the user is
    revoked; staff then enrol again at their next admin sign-in."""
    if not actor.is_superuser:
        raise PermissionDenied("Only superusers may reset a second factor")
    if actor.pk == user.pk:
        raise Conflict("Reset another user's factor; turn off your own with your code")
    with transaction.atomic():
        TotpDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        security_event_record(
            kind=SecurityEvent.Kind.MFA_RESET,
            context=context,
            user=user,
            detail={"actor_id": actor.pk},
        )
        sessions_revoke_others(
            user=user, keep_family=None, context=context, reason="second factor reset"
        )
        user_sockets_recheck_on_commit(user.pk)


# --- The sign-in's second step --------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """What an `mfa_token` stands for: this user, after their password, asking these scopes."""

    user: User
    scope: str | None


def _token_key(prefix: str, mfa_token: str) -> str:
    return prefix + hashlib.sha256(mfa_token.encode("utf-8", "surrogatepass")).hexdigest()


def mfa_challenge_issue(*, user: User, scope: str | None) -> str:
    """The `mfa_token` of a sign-in whose password was right: 256 random bits, only a hash
    kept (shared cache: any node may receive the code), for MFA_TOKEN_TTL_SECONDS."""
    token = secrets.token_urlsafe(32)
    cache.set(
        _token_key(_CHALLENGE_CACHE_PREFIX, token),
        {
            "user_id": user.pk,
            "scope": scope,
            "pwf": password_fingerprint(user),
            "expires_at": time.time() + MFA_TOKEN_TTL_SECONDS,
        },
        timeout=MFA_TOKEN_TTL_SECONDS,
    )
    return token


def mfa_challenge_open(mfa_token: Any) -> Challenge | None:
    """The live challenge `mfa_token` names (not used, not expired, not worn out by wrong
    codes, and its user still active with the same password), or None."""
    if not isinstance(mfa_token, str) or not 0 < len(mfa_token) <= 128:
        return None
    data = cache.get(_token_key(_CHALLENGE_CACHE_PREFIX, mfa_token))
    if not isinstance(data, dict) or float(data.get("expires_at", 0)) < time.time():
        return None
    user = User.objects.filter(pk=int(data["user_id"]), is_active=True).first()
    if user is None or not constant_time_compare(str(data.get("pwf")), password_fingerprint(user)):
        return None
    return Challenge(user=user, scope=data.get("scope"))


def mfa_challenge_complete(
    *, mfa_token: str, challenge: Challenge, code: Any, context: CallContext | None = None
) -> bool:
    """Check `code` against the challenge's user. Right: the token is used up (exactly one of
    two racing requests gets True). Wrong: counted; the fifth wrong code ends the token. The
    caller counts wrong codes against the sign-in limits."""
    if factor_verify(challenge.user, code):
        # delete() says whether this call removed the key: a token used once only.
        return bool(cache.delete(_token_key(_CHALLENGE_CACHE_PREFIX, mfa_token)))
    failures = cache_count(
        _token_key(_MFA_FAILURES_PREFIX, mfa_token), timeout=MFA_TOKEN_TTL_SECONDS
    )
    if failures >= MFA_TOKEN_MAX_FAILURES:
        cache.delete(_token_key(_CHALLENGE_CACHE_PREFIX, mfa_token))
    security_event_record(
        kind=SecurityEvent.Kind.MFA_FAILED,
        context=context,
        user=challenge.user,
        detail={"stage": "sign-in", "failures": failures},
    )
    return False
