"""`/auth/*` and `/api-keys` (docs/api.md)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Status
from pydantic import Field

from accounts import data_rights, mfa, selectors, services, sessions
from accounts.auth import Customer, Principal, Superuser, principal_of
from accounts.models import ApiKey, User
from accounts.ratelimits import (
    login_failures_counted,
    login_rate_limit_enforce,
    refresh_rate_limit_enforce,
    register_rate_limit_enforce,
)
from accounts.schemas import (
    ApiKeyCreatedOut,
    ApiKeyIn,
    ApiKeyOut,
    ApiKeyPageOut,
    EnrolmentRequiredOut,
    MeOut,
    MfaTokenIn,
    PasswordChangeIn,
    PasswordConfirmIn,
    PasswordGrantIn,
    RecoveryCodesOut,
    RefreshIn,
    RegisterIn,
    RevokeIn,
    SessionListOut,
    TokenIn,
    TokenOut,
    TokenRefusedOut,
    TotpConfirmIn,
    TotpDisableIn,
    TotpEnrolmentOut,
    UserOut,
)
from accounts.scopes import ADMIN, CONVERSATIONS_READ, format_scopes, parse_scope_string
from core.errors import Conflict, NotAuthenticated, ParleyError
from core.ids import PathId
from core.pagination import Page
from core.parsing import form_fields, json_loads
from core.request_context import CallContext
from core.schemas import (
    AUTHENTICATED_ERRORS,
    BODY_ERRORS,
    PageParams,
    ShownOnce,
    StrictIn,
    error_responses,
    optional_body,
    optional_body_openapi,
    page_route,
    validate_body,
)

# Each router's policy is declared once, on the router: any signed-in account for /auth (its
# sign-in routes say `auth=None`, public), superusers with `admin` for /api-keys.
auth_router = Router(tags=["auth"], auth=Customer())
api_keys_router = Router(tags=["api-keys"], auth=Superuser(scopes=[ADMIN]))


class UnsupportedMediaType(ParleyError):
    status_code = 415
    default_detail = "Send JSON or application/x-www-form-urlencoded"


_TOKEN_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": TokenIn.model_json_schema()},
        "application/x-www-form-urlencoded": {"schema": PasswordGrantIn.model_json_schema()},
    },
}


def _token_request(request: HttpRequest) -> TokenIn | PasswordGrantIn:
    """JSON, or the OAuth2 password grant as a form; both validated strictly."""
    content_type = (request.content_type or "").lower()
    if content_type == "application/json":
        return validate_body(TokenIn, optional_body(request))
    if content_type == "application/x-www-form-urlencoded":
        return validate_body(PasswordGrantIn, form_fields(request).dict())
    raise UnsupportedMediaType()


@auth_router.post(
    "/token",
    auth=None,
    response={
        200: TokenOut,
        **error_responses(415, 429, *BODY_ERRORS),
        401: TokenRefusedOut,
        403: EnrolmentRequiredOut,
    },
    openapi_extra={"requestBody": _TOKEN_REQUEST_BODY},
    summary="Get an access and refresh token (JSON or OAuth2 password form); with a second "
    "factor, 401 with mfa_required and an mfa_token for POST /auth/token/mfa",
)
def token_obtain(request: HttpRequest, response: HttpResponse) -> dict[str, Any]:
    payload = _token_request(request)
    rate = login_rate_limit_enforce(request=request, username=payload.username)
    if rate is not None:
        rate.apply_headers(response)
    user = services.user_authenticate(
        request=request, username=payload.username, password=payload.password
    )
    if mfa.has_confirmed_factor(user):
        # The password was right; no token until the code is (POST /auth/token/mfa).
        raise mfa.SecondFactorRequired(mfa.mfa_challenge_issue(user=user, scope=payload.scope))
    if mfa.mfa_required_for(user):
        raise mfa.EnrolmentRequired()
    requested = parse_scope_string(payload.scope) if payload.scope is not None else None
    return services.token_pair_issue(
        user=user, requested_scopes=requested, request=request
    ).as_response()


@auth_router.post(
    "/token/mfa",
    auth=None,  # public: the mfa_token from POST /auth/token is the credential
    response={200: TokenOut, **error_responses(401, 429, *BODY_ERRORS)},
    summary="Second step of a sign-in: the mfa_token and a TOTP or recovery code",
)
def token_obtain_mfa(
    request: HttpRequest, response: HttpResponse, payload: MfaTokenIn
) -> dict[str, Any]:
    challenge = mfa.mfa_challenge_open(payload.mfa_token)
    if challenge is None:
        raise NotAuthenticated("Invalid or expired mfa_token", credentials_presented=False)
    username = challenge.user.get_username()
    # Only wrong codes spend the sign-in budgets; a right code within them is accepted.
    with login_failures_counted(request=request, username=username, failures=(NotAuthenticated,)):
        context = CallContext.from_request(request)
        if not mfa.mfa_challenge_complete(
            mfa_token=payload.mfa_token, challenge=challenge, code=payload.code, context=context
        ):
            raise NotAuthenticated("Invalid code or mfa_token", credentials_presented=False)
    requested = parse_scope_string(challenge.scope) if challenge.scope is not None else None
    return services.token_pair_issue(
        user=challenge.user, requested_scopes=requested, amr=("pwd", "otp"), request=request
    ).as_response()


def _password_confirmed(request: HttpRequest, user: User, password: str, purpose: str) -> None:
    """A password asked again for a sensitive change: the sign-in budgets are checked first
    and only a wrong password spends them (403)."""
    with login_failures_counted(request=request, username=user.get_username()):
        services.password_confirm(
            user=user,
            password=password,
            purpose=purpose,
            context=CallContext.from_request(request),
        )


@auth_router.post(
    "/refresh",
    auth=None,
    response={200: TokenOut, **error_responses(401, 429, *BODY_ERRORS)},
    summary="Rotate a refresh token (the old one stops working; reusing it revokes the family)",
)
def token_refresh(
    request: HttpRequest, response: HttpResponse, payload: RefreshIn
) -> dict[str, Any]:
    rate = refresh_rate_limit_enforce(request=request)
    if rate is not None:
        rate.apply_headers(response)
    return services.token_refresh(raw_refresh=payload.refresh_token, request=request).as_response()


@auth_router.post(
    "/revoke",
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 415, *BODY_ERRORS)},
    openapi_extra=optional_body_openapi(RevokeIn),
    summary="Revoke the presented access token and, optionally, a refresh token",
)
def token_revoke(request: HttpRequest) -> Status[None]:
    # The body is optional (revoking just the access token needs none), which ninja's declared
    # bodies cannot express; it is validated with the same strict schema by hand.
    payload = validate_body(RevokeIn, optional_body(request))
    services.token_revoke(
        principal=principal_of(request), raw_refresh=payload.refresh_token, request=request
    )
    return Status(204, None)


@auth_router.post(
    "/register",
    auth=None,
    response={201: UserOut, **error_responses(409, 429, *BODY_ERRORS)},
    summary="Create a customer account",
)
def register(request: HttpRequest, response: HttpResponse, payload: RegisterIn) -> Status[Any]:
    rate = register_rate_limit_enforce(request=request)
    if rate is not None:
        rate.apply_headers(response)
    user = services.user_register(
        username=payload.username, password=payload.password, email=payload.email
    )
    return Status(201, user)


@auth_router.get(
    "/me",
    response={200: MeOut, **error_responses(*AUTHENTICATED_ERRORS)},
    summary="The caller's account and the scopes in force",
)
def me(request: HttpRequest) -> dict[str, Any]:
    principal = principal_of(request)
    user = principal.user
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "scopes": format_scopes(principal.scopes).split(),
        "mfa": mfa.mfa_status(user),
    }


# --- Second factor, sessions, password ------------------------------------------------------


@auth_router.post(
    "/mfa/totp",
    response={
        201: TotpEnrolmentOut,
        **error_responses(*AUTHENTICATED_ERRORS, 409, 429, *BODY_ERRORS),
    },
    summary="Start a TOTP enrolment (asks for your password); active once confirmed",
)
def totp_enrolment_start(request: HttpRequest, payload: PasswordConfirmIn) -> Status[Any]:
    user = principal_of(request).user
    _password_confirmed(request, user, payload.password, "a second-factor enrolment")
    enrolment = mfa.totp_enrolment_start(user=user)
    return Status(201, {"secret": enrolment.secret, "otpauth_uri": enrolment.otpauth_uri})


@auth_router.post(
    "/mfa/totp/confirm",
    response={
        200: RecoveryCodesOut,
        **error_responses(*AUTHENTICATED_ERRORS, 409, 429, *BODY_ERRORS),
    },
    summary="Confirm the enrolment with a code: TOTP is on, every other session is revoked",
)
def totp_enrolment_confirm(request: HttpRequest, payload: TotpConfirmIn) -> dict[str, Any]:
    principal = principal_of(request)
    with login_failures_counted(
        request=request, username=principal.user.get_username(), failures=(mfa.InvalidCode,)
    ):
        codes = mfa.totp_enrolment_confirm(
            user=principal.user,
            code=payload.code,
            keep_family=principal.token_family,
            context=CallContext.from_request(request),
        )
    return {"recovery_codes": codes}


@auth_router.delete(
    "/mfa/totp",
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 409, 429, *BODY_ERRORS)},
    summary="Turn TOTP off (password and a code; refused for staff while it is required)",
)
def totp_disable(request: HttpRequest, payload: TotpDisableIn) -> Status[None]:
    user = principal_of(request).user
    if mfa.mfa_required_for(user):
        raise Conflict("Staff accounts must keep their second factor")
    _password_confirmed(request, user, payload.password, "turning the second factor off")
    with login_failures_counted(request=request, username=user.get_username()):
        mfa.totp_disable(user=user, code=payload.code, context=CallContext.from_request(request))
    return Status(204, None)


class NoFieldsIn(StrictIn):
    """The body of a DELETE that takes none: empty, or `{}`."""


def _no_body(request: HttpRequest) -> None:
    """Refuse a body on a route that reads none (400/415/422), rather than ignore it."""
    if not request.body:
        return
    if (request.content_type or "").lower() != "application/json":
        raise UnsupportedMediaType()
    validate_body(NoFieldsIn, json_loads(request.body))


def _session_items(principal: Principal) -> list[dict[str, Any]]:
    return [
        {
            "id": session.pk,
            "created_at": session.created_at,
            "last_used_at": session.last_used_at,
            "ip": session.ip,
            "user_agent": session.user_agent,
            "amr": session.amr,
            "current": session.family == principal.token_family,
        }
        for session in sessions.session_list_for_user(user=principal.user)
    ]


@auth_router.get(
    "/sessions",
    response={200: SessionListOut, **error_responses(*AUTHENTICATED_ERRORS)},
    summary="Your sessions (one per sign-in), the current one marked",
)
def session_list(request: HttpRequest) -> dict[str, Any]:
    return {"items": _session_items(principal_of(request))}


@auth_router.delete(
    "/sessions/{session_id}",
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 404, 415, *BODY_ERRORS)},
    summary="Revoke one of your sessions: its tokens stop and its sockets close",
)
def session_revoke(request: HttpRequest, session_id: PathId) -> Status[None]:
    _no_body(request)
    sessions.session_revoke(
        user=principal_of(request).user,
        session_id=session_id,
        context=CallContext.from_request(request),
    )
    return Status(204, None)


@auth_router.delete(
    "/sessions",
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 415, *BODY_ERRORS)},
    summary="Revoke every session but the one making this request",
)
def session_revoke_others(request: HttpRequest) -> Status[None]:
    _no_body(request)
    principal = principal_of(request)
    sessions.sessions_revoke_others(
        user=principal.user,
        keep_family=principal.token_family,
        context=CallContext.from_request(request),
    )
    return Status(204, None)


@auth_router.post(
    "/password",
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 429, *BODY_ERRORS)},
    summary="Change your password: every other session is revoked",
)
def password_change(request: HttpRequest, payload: PasswordChangeIn) -> Status[None]:
    principal = principal_of(request)
    user = principal.user
    with login_failures_counted(request=request, username=user.get_username()):
        services.password_change(
            user=user,
            current_password=payload.current_password,
            new_password=payload.new_password,
            keep_family=principal.token_family,
            context=CallContext.from_request(request),
        )
    return Status(204, None)


# --- Customers' data: export and erasure (accounts.data_rights) -------------------------------
# On this router because GET /auth/me lives here: the same path on another router would be
# shadowed (405).


class AccountDeleteIn(StrictIn):
    password: str = Field(min_length=1, max_length=4096)


@auth_router.get(
    "/me/export",
    auth=Customer(scopes=[CONVERSATIONS_READ]),
    response={200: dict[str, Any], **error_responses(*AUTHENTICATED_ERRORS)},
    summary="Everything Parley holds about you: profile, conversations, messages, ratings",
)
def me_export(request: HttpRequest) -> dict[str, Any]:
    return data_rights.user_export(principal_of(request).user)


@auth_router.delete(
    "/me",
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 409, 429, *BODY_ERRORS)},
    summary="Erase your account and everything that is yours (asks for your password)",
)
def me_delete(request: HttpRequest, payload: AccountDeleteIn) -> Status[None]:
    user = principal_of(request).user
    # The password is asked again, so a stolen access token alone cannot destroy an account;
    # and limited like sign-in, since this also answers "is this the password?". Only a wrong
    # one spends the budget, so the token cannot lock its owner out of signing in either.
    _password_confirmed(request, user, payload.password, "account erasure")
    data_rights.user_erase(user=user, actor=user, context=CallContext.from_request(request))
    return Status(204, None)


# --- API keys -----------------------------------------------------------------------------------


@api_keys_router.post(
    "",
    response={201: ApiKeyCreatedOut, **error_responses(*AUTHENTICATED_ERRORS, *BODY_ERRORS)},
    summary="Create an API key (the key is shown once)",
)
def api_key_create(request: HttpRequest, payload: ApiKeyIn) -> Status[ShownOnce]:
    key, raw = services.api_key_create(
        actor=principal_of(request).user,
        name=payload.name,
        owner_id=payload.owner_id,
        scopes=list(payload.scopes),
        expires_at=payload.expires_at,
    )
    return Status(201, ShownOnce(key, key=raw))


@page_route(api_keys_router, ApiKeyPageOut, summary="List API keys (never their secrets)")
def api_key_list(request: HttpRequest, params: Query[PageParams]) -> Page[ApiKey]:
    return selectors.api_key_page(cursor=params.cursor, limit=params.limit)


@api_keys_router.delete(
    "/{api_key_id}",
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 404, 422)},
    summary="Revoke an API key; it stops working at once",
)
def api_key_revoke(request: HttpRequest, api_key_id: PathId) -> Status[None]:
    services.api_key_revoke(actor=principal_of(request).user, api_key_id=api_key_id)
    return Status(204, None)


__all__ = ["ApiKeyOut", "api_keys_router", "auth_router"]
