from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.usernames import canonical_username_or_none, username_fold
from core.fieldcrypt import EncryptedTextField
from core.modelfields import optional_user


class ParleyUserManager(UserManager["User"]):
    def get_by_natural_key(self, username: str | None) -> User:
        """The account a sign-in names: an exact match on the canonical form
        (accounts/usernames.py), never `iexact`, whose meaning differs between databases. A
        name with no canonical form names no account (ModelBackend still spends the hashing
        time on it)."""
        canonical = canonical_username_or_none(username)
        if canonical is None:
            raise self.model.DoesNotExist
        return self.get(username=canonical)


class User(AbstractUser):
    """Every Parley account: customers, operators (is_staff) and superusers."""

    email = models.EmailField("email address", blank=True)
    # What customers see on an operator's messages and notices ("Olivia joined"). Staff set it
    # in the admin; empty falls back to the first name, then the username (`public_name`).
    display_name = models.CharField(max_length=60, blank=True)

    objects = ParleyUserManager()  # type: ignore[misc]  # django-stubs: manager override

    @classmethod
    def normalize_username(cls, username: str) -> str:
        # Django calls this in create_user and the admin's forms: store the canonical form.
        return username_fold(username) if isinstance(username, str) else username

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Every door (factories, shell, fixtures) stores the canonical form, so the exact
        # lookup above always finds the account.
        if isinstance(self.username, str):
            self.username = username_fold(self.username)
        super().save(*args, **kwargs)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            # "Alice" and "alice" are the same person to a support team.
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
        ]

    @property
    def public_name(self) -> str:
        """The name customers see for this (staff) user."""
        return self.display_name.strip() or self.first_name.strip() or self.get_username()


class ApiKey(models.Model):
    """A long-lived credential for server-to-server clients. Only a SHA-256 of the key is kept:
    keys are 240-bit random, so a fast hash is enough and lookups stay cheap."""

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = optional_user(editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    use_count = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


class Revocation(models.Model):
    """A user's token(s) refused before they expire; the row is useless after `expires_at`
    and is pruned. Each kind names what it revokes in one unique field."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class RevokedAccessToken(Revocation):
    """Access tokens revoked before they expire (simplejwt never checks access tokens against
    its blacklist)."""

    jti = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return self.jti


class RevokedTokenFamily(Revocation):
    """A refresh-token family (every token descended by rotation from one sign-in) revoked
    because a rotated refresh token was presented again (reuse detection, OAuth 2.0 Security
    BCP): its refresh and access tokens are refused until every token of the family has
    expired."""

    family = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return self.family


class SecurityEvent(models.Model):
    class Kind(models.TextChoices):
        AUTH_FAILED = "auth_failed", "Authentication failed"
        LOGIN_FAILED = "login_failed", "Login failed"
        IDOR_ATTEMPT = "idor_attempt", "IDOR attempt"
        SCOPE_DENIED = "scope_denied", "Scope denied"
        TIER_DENIED = "tier_denied", "Tier denied"
        RATE_LIMITED = "rate_limited", "Rate limited"
        TOKEN_REVOKED = "token_revoked", "Token revoked"
        REFRESH_REUSED = "refresh_reused", "Rotated refresh token reused"
        API_KEY_FAILED = "api_key_failed", "API key refused"
        ACCOUNT_ERASED = "account_erased", "Account erased"
        MFA_ENABLED = "mfa_enabled", "Second factor enabled"
        MFA_DISABLED = "mfa_disabled", "Second factor disabled"
        MFA_FAILED = "mfa_failed", "Second factor refused"
        MFA_RESET = "mfa_reset", "Second factor reset by a superuser"
        SESSION_REVOKED = "session_revoked", "Session revoked"
        PASSWORD_CHANGED = "password_changed", "Password changed"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    level = models.CharField(max_length=10)
    user = optional_user(related_name="security_events")
    ip = models.GenericIPAddressField(null=True, blank=True)
    path = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.kind}"


class TotpDevice(models.Model):
    """A user's TOTP authenticator (RFC 6238: SHA-1, 6 digits, 30 s). Created unconfirmed by
    an enrolment; active once a code from it was confirmed. One per user."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_device"
    )
    # Base32, encrypted at rest under FIELD_ENCRYPTION_KEYS (core.fieldcrypt).
    secret = EncryptedTextField()
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The time step of the last code accepted: a code (and any earlier one) is accepted once.
    last_used_step = models.BigIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "TOTP device"

    def __str__(self) -> str:
        return f"TOTP for user {self.user_id}"

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None


class RecoveryCode(models.Model):
    """A single-use recovery code. Only a SHA-256 of it is kept: codes are 140-bit random, so
    a fast hash cannot be reversed by guessing (ASVS 6.5.2 asks for a password hash only below
    112 bits)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes"
    )
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "code_hash"], name="recovery_code_unique")
        ]

    def __str__(self) -> str:
        return f"recovery code {self.pk} of user {self.user_id}"


class SignInSession(models.Model):
    """One sign-in: a refresh-token family (every token rotated from one sign-in carries its
    `fam` claim). Listed and revoked over /auth/sessions; revoking one adds its family to
    RevokedTokenFamily, which every request already checks."""

    family = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sign_in_sessions"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now)
    # When its newest refresh token expires: past it the session is over by itself.
    expires_at = models.DateTimeField(db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    amr = models.JSONField(default=list)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Set by a password change made from this session: the fingerprint (accounts.tokens) of
    # the new password, so this session's tokens, issued before the change, stay valid while
    # every other session's stop.
    password_fingerprint = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["-last_used_at", "-id"]

    def __str__(self) -> str:
        return f"session {self.pk} of user {self.user_id}"
