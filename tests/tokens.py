"""Access tokens made by hand in tests: forged, tampered with, or signed under a chosen key."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
from django.conf import settings

from accounts.models import User
from accounts.signing import key_id
from accounts.tokens import password_fingerprint


def access_claims(user: User, **overrides: Any) -> dict[str, Any]:
    """The claims of a valid access token of `user` (ten minutes), changed by `overrides`; an
    override of None leaves the claim out."""
    now = int(time.time())
    claims = {
        "token_type": "access",
        "exp": now + 600,
        "iat": now,
        "jti": "a" * 32,
        "sub": str(user.pk),
        "scope": "conversations:read messages:write",
        "pwf": password_fingerprint(user),
        "fam": "f" * 32,
        "amr": ["pwd"],
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        **overrides,
    }
    return {name: value for name, value in claims.items() if value is not None}


def signed(claims: dict[str, Any], key: str, *, kid: str | None, algorithm: str = "HS256") -> str:
    """`claims` signed with `key`; the header names `kid` (no kid at all when None)."""
    return jwt.encode(claims, key, algorithm=algorithm, headers={} if kid is None else {"kid": kid})


def token_of(claims: dict[str, Any], key: str | None = None, algorithm: str = "HS256") -> str:
    """`claims` as a token whose header names the configured key (accounts.signing), signed
    with `key` — the configured key unless told, so a wrong key is a forged signature under the
    right kid."""
    configured = settings.JWT_SIGNING_KEY
    return signed(claims, key or configured, kid=key_id(configured), algorithm=algorithm)


def b64url(data: bytes) -> str:
    """base64url without padding, as a token's segments are written."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
