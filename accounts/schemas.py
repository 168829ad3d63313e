from __future__ import annotations

import typing
from datetime import UTC, datetime
from typing import Literal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from ninja import Schema
from pydantic import Field, field_validator

from accounts.scopes import ALL_SCOPES
from accounts.usernames import MAX_USERNAME_CHARS, canonical_username, registrable_username
from core.ids import Id
from core.schemas import StrictIn

ScopeName = Literal[
    "conversations:read", "messages:write", "escalations:manage", "stats:read", "admin"
]
assert set(typing.get_args(ScopeName)) == set(ALL_SCOPES)  # noqa: S101 - keeps the two lists in step


# Raw usernames may be longer than the 150-character limit, which applies after normalisation
# (combining sequences compose); this bound only keeps the work per request small.
RAW_USERNAME_MAX = 4 * MAX_USERNAME_CHARS


class TokenIn(StrictIn):
    username: str = Field(
        min_length=1, max_length=RAW_USERNAME_MAX, description="Any spelling; compared canonically"
    )
    password: str = Field(min_length=1, max_length=1024)
    scope: str | None = Field(
        default=None,
        max_length=500,
        description="Space-separated scopes; omitted = all your role allows",
    )

    @field_validator("username")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return canonical_username(value)  # InvalidUsername is a ValueError: 422 at the field


class PasswordGrantIn(StrictIn):
    """The OAuth2 password grant, form-encoded (the docs' Authorize button sends this)."""

    grant_type: Literal["password"]
    username: str = Field(min_length=1, max_length=RAW_USERNAME_MAX)
    password: str = Field(min_length=1, max_length=1024)
    scope: str | None = Field(default=None, max_length=500)
    client_id: str | None = Field(default=None, max_length=200)
    client_secret: str | None = Field(default=None, max_length=200)

    @field_validator("username")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return canonical_username(value)  # InvalidUsername is a ValueError: 422 at the field


class TokenOut(Schema):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: int
    scope: str


class RefreshIn(StrictIn):
    refresh_token: str = Field(min_length=1, max_length=4096)


class RevokeIn(StrictIn):
    refresh_token: str | None = Field(default=None, max_length=4096)


class RegisterIn(StrictIn):
    username: str = Field(
        min_length=1,
        max_length=RAW_USERNAME_MAX,
        description="Stored in canonical form (NFKC, case-folded): at most 150 characters and "
        "only letters, digits and @ . + - _ once normalised",
    )
    password: str = Field(min_length=1, max_length=1024)
    email: str = Field(min_length=3, max_length=254)

    @field_validator("username")
    @classmethod
    def _registrable(cls, value: str) -> str:
        return registrable_username(value)

    @field_validator("email")
    @classmethod
    def _valid_email(cls, value: str) -> str:
        try:
            validate_email(value)
        except DjangoValidationError:
            raise ValueError("Enter a valid email address") from None
        return value.strip()


class UserOut(Schema):
    id: int
    username: str
    email: str


class TokenRefusedOut(Schema):
    """401 from POST /auth/token: bad credentials, or a right password awaiting its code."""

    detail: str
    mfa_required: bool | None = Field(
        default=None, description="true: send the mfa_token and a code to POST /auth/token/mfa"
    )
    mfa_token: str | None = Field(default=None, description="5 minutes, single use")


class EnrolmentRequiredOut(Schema):
    """403 from POST /auth/token: staff without a second factor while one is required."""

    detail: str
    mfa_enrolment_required: bool


class MfaStatusOut(Schema):
    totp: bool
    recovery_codes_left: int


class MeOut(Schema):
    id: int
    username: str
    email: str
    is_staff: bool
    is_superuser: bool
    scopes: list[str]
    mfa: MfaStatusOut


CodeField = Field(
    min_length=1,
    max_length=64,
    description="A current 6-digit TOTP code, or an unused recovery code",
)


class MfaTokenIn(StrictIn):
    mfa_token: str = Field(min_length=1, max_length=128)
    code: str = CodeField


class PasswordConfirmIn(StrictIn):
    password: str = Field(min_length=1, max_length=1024)


class TotpConfirmIn(StrictIn):
    code: str = Field(min_length=1, max_length=64, description="A code from the new secret")


class TotpDisableIn(StrictIn):
    password: str = Field(min_length=1, max_length=1024)
    code: str = CodeField


class TotpEnrolmentOut(Schema):
    secret: str = Field(description="Base32; shown only in this response")
    otpauth_uri: str


class RecoveryCodesOut(Schema):
    recovery_codes: list[str] = Field(description="Ten single-use codes; shown only here")


class PasswordChangeIn(StrictIn):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class SessionOut(Schema):
    id: int
    created_at: datetime
    last_used_at: datetime
    ip: str | None
    user_agent: str
    amr: list[str]
    current: bool


class SessionListOut(Schema):
    items: list[SessionOut]


class ApiKeyIn(StrictIn):
    name: str = Field(min_length=1, max_length=100)
    owner_id: Id
    scopes: list[ScopeName] = Field(min_length=1, max_length=len(ALL_SCOPES))
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _expires_at_utc(cls, value: datetime | None) -> datetime | None:
        """Store UTC. ISO 8601 (and pydantic) allow UTC offsets up to ±23:59, PostgreSQL only
        ±15:59 ("…+23:41" was a 500), and a value that leaves datetime's range once converted
        is a client error, not an OverflowError (a 500 on SQLite too). Naive values are UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("expires_at is out of range") from None


class ApiKeyOut(Schema):
    id: int
    name: str
    owner_id: int
    scopes: list[str]
    expires_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    use_count: int
    prefix: str


class ApiKeyCreatedOut(Schema):
    id: int
    name: str
    key: str = Field(description="The secret. Shown only in this response; store it now.")
    owner_id: int
    scopes: list[str]
    expires_at: datetime | None


class ApiKeyPageOut(Schema):
    items: list[ApiKeyOut]
    next_cursor: str | None
