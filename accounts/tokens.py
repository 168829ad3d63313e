"""Parley's JWTs, built on simplejwt's token classes.

What simplejwt leaves to us (it checks `aud`/`iss` only when configured, never consults a
deny-list for access tokens, and loads no user) is done here: every registered claim is
required (a token missing one is refused, not defaulted), `iat`/`nbf` in the future are refused,
and each token carries a fingerprint of the user's password hash so that changing the password
revokes every token issued before. Refresh tokens are stored in simplejwt's outstanding list
*without* their text: the database never holds a usable token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, Token
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import User
from accounts.scopes import format_scopes
from accounts.signing import KeyringTokenBackend, signing_backend
from core.ids import parse_id

SCOPE_CLAIM = "scope"
PASSWORD_FINGERPRINT_CLAIM = "pwf"  # noqa: S105 - a claim name, not a secret
# The refresh-token family: the jti of the first refresh token of a sign-in, carried by every
# refresh token rotated from it and every access token they issue. Reuse of a rotated refresh
# token revokes the whole family (accounts.services.token_refresh).
FAMILY_CLAIM = "fam"
# How the sign-in that started the family was proven (RFC 8176): ["pwd"] or ["pwd", "otp"].
AMR_CLAIM = "amr"
AMR_VALUES = frozenset({"pwd", "otp"})
REQUIRED_CLAIMS = (
    "sub",
    "jti",
    "iat",
    "exp",
    "token_type",
    SCOPE_CLAIM,
    "iss",
    "aud",
    PASSWORD_FINGERPRINT_CLAIM,
    FAMILY_CLAIM,
    AMR_CLAIM,
)


def password_fingerprint(user: User) -> str:
    """A keyed digest of the stored password hash: it changes whenever the password does, and
    reveals nothing about the hash to someone reading a token."""
    return _fingerprint(user.password, settings.SECRET_KEY)


@lru_cache(maxsize=4096)
def _fingerprint(password_hash: str, secret: str) -> str:
    # Checked on every authenticated request: a pure function of its two arguments, so it is
    # computed once per password hash (and key) and process, not once per request.
    return salted_hmac(
        "parley.tokens.password", password_hash, secret=secret, algorithm="sha256"
    ).hexdigest()[:20]


def token_user_id(payload: Mapping[str, Any]) -> int | None:
    """The user a token's `sub` names (simplejwt writes it as a string of the id), read with
    the one id parser: None for anything else, e.g. a validly signed "²"."""
    sub = payload.get("sub")
    return parse_id(sub) if isinstance(sub, str) else None


# A family is the jti of the sign-in's first refresh token (uuid hex); anything else a signed
# token might carry (NUL, other scripts) never reaches a query.
_FAMILY_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def token_family(payload: Mapping[str, Any]) -> str | None:
    family = payload.get(FAMILY_CLAIM)
    return family if isinstance(family, str) and _FAMILY_SHAPE.fullmatch(family) else None


def token_matches_password(payload: Mapping[str, Any], user: User) -> bool:
    claim = payload.get(PASSWORD_FINGERPRINT_CLAIM)
    return isinstance(claim, str) and constant_time_compare(claim, password_fingerprint(user))


class _StrictClaimsMixin:
    payload: dict[str, Any]
    current_time: datetime

    def get_token_backend(self) -> KeyringTokenBackend:
        # Several verifying keys and a `kid` header (accounts.signing), not simplejwt's one key.
        return signing_backend()

    def verify(self) -> None:
        super().verify()  # type: ignore[misc]  # signature, alg, exp, iss, aud, jti, token_type
        missing = [claim for claim in REQUIRED_CLAIMS if claim not in self.payload]
        if missing:
            raise TokenError(f"Token is missing claims: {', '.join(missing)}")
        if token_user_id(self.payload) is None:
            raise TokenError("Token subject is invalid")
        if not isinstance(self.payload[SCOPE_CLAIM], str):
            raise TokenError("Token scope is invalid")
        if token_family(self.payload) is None:
            raise TokenError("Token family is invalid")
        amr = self.payload[AMR_CLAIM]
        if not isinstance(amr, list) or not amr or not set(amr) <= AMR_VALUES:
            raise TokenError("Token amr is invalid")
        now = self.current_time.timestamp()
        for claim in ("iat", "nbf"):
            value = self.payload.get(claim)
            if value is None:
                continue
            if not isinstance(value, int | float) or value > now:
                raise TokenError(f"Token '{claim}' is in the future")


class ParleyAccessToken(_StrictClaimsMixin, AccessToken):
    pass


class ParleyRefreshToken(_StrictClaimsMixin, RefreshToken):  # type: ignore[misc]  # simplejwt stubs
    access_token_class = ParleyAccessToken

    @classmethod
    def for_user_with_scopes(
        cls,
        user: User,
        scopes: frozenset[str],
        *,
        family: str | None = None,
        amr: tuple[str, ...] = ("pwd",),
    ) -> ParleyRefreshToken:
        """A new refresh token; `family` None starts a new family (a sign-in), a rotation
        passes the family of the token it replaces (and its `amr`)."""
        # Token.for_user, not BlacklistMixin.for_user: the latter stores the whole token text.
        token = Token.for_user.__func__(cls, user)  # type: ignore[attr-defined]
        token[SCOPE_CLAIM] = format_scopes(scopes)
        token[PASSWORD_FINGERPRINT_CLAIM] = password_fingerprint(user)
        token[FAMILY_CLAIM] = family or token["jti"]
        token[AMR_CLAIM] = list(amr)
        OutstandingToken.objects.create(
            user=user,
            jti=token["jti"],
            token="(not stored)",  # noqa: S106 - deliberately not the token
            created_at=token.current_time,
            expires_at=datetime_from_epoch(token["exp"]),
        )
        return token


def token_expiry(payload: Mapping[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(payload["exp"]), tz=UTC)
