"""Signing keys of Parley's JWTs: several keys verify, the first signs, each token names its key.

simplejwt's `TokenBackend` holds one HS256 key, which it both signs and verifies with (its
issue #608: no key rotation, no `kid`). Replacing the backend wholesale would mean re-doing its
checks (algorithm pin, audience, issuer, leeway, expiry, the error types its token classes
expect); instead `KeyringTokenBackend` overrides the two places a key is chosen:

- `encode` signs with the first key of JWT_SIGNING_KEYS and writes that key's id into the
  token's header (`kid`);
- `get_verifying_key` reads the (not yet verified) header's `kid` and returns the configured
  key it names. A token whose `kid` names no configured key — a retired key, a forged header,
  no `kid` at all — is refused before any signature is computed. Everything else is
  simplejwt's own `decode` (PyJWT with the algorithm pinned, `aud`/`iss` checked).

The `kid` is derived from the key by a one-way hash, so it names the key without revealing
anything about it. The backend is built per configured key list and cached: changing
JWT_SIGNING_KEYS (a restart in production, `override_settings` in tests) builds a new one, and
the per-process cache of verified tokens (accounts.auth) is keyed by the backend, so a retired
key's tokens are never served from it.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from typing import Any

import jwt
from django.conf import settings
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.settings import api_settings

KID_CHARS = 16


def key_id(key: str) -> str:
    """The `kid` of a signing key: 96 bits of a SHA-256 of the key (domain-separated), never
    the key itself."""
    digest = hashlib.sha256(b"parley.jwt.kid\x00" + key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:KID_CHARS]


class KeyringTokenBackend(TokenBackend):
    """simplejwt's backend with a key ring: sign with the first key, verify with the key the
    token's `kid` names."""

    def __init__(self, keys: tuple[str, ...], **kwargs: Any) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        super().__init__(signing_key=keys[0], **kwargs)
        self.signing_kid = key_id(keys[0])
        self.verifying_keys = {key_id(key): self._prepare_key(key) for key in keys}

    def encode(self, payload: dict[str, Any]) -> str:
        jwt_payload = payload.copy()
        if self.audience is not None:
            jwt_payload["aud"] = self.audience
        if self.issuer is not None:
            jwt_payload["iss"] = self.issuer
        return jwt.encode(
            jwt_payload,
            self.prepared_signing_key,
            algorithm=self.algorithm,
            headers={"kid": self.signing_kid},
            json_encoder=self.json_encoder,
        )

    def get_verifying_key(self, token: Any) -> Any:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise TokenBackendError("Token is invalid") from exc
        key = self.verifying_keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenBackendError("Token names no configured signing key")
        return key


def signing_backend() -> KeyringTokenBackend:
    """The backend for the keys configured now."""
    return _backend(
        tuple(settings.JWT_SIGNING_KEYS),
        api_settings.ALGORITHM,
        api_settings.AUDIENCE,
        api_settings.ISSUER,
        api_settings.LEEWAY,
    )


@lru_cache(maxsize=8)
def _backend(
    keys: tuple[str, ...], algorithm: str, audience: Any, issuer: Any, leeway: Any
) -> KeyringTokenBackend:
    return KeyringTokenBackend(
        keys,
        algorithm=algorithm,
        audience=audience,
        issuer=issuer,
        leeway=leeway,
        json_encoder=api_settings.JSON_ENCODER,
    )
