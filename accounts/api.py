"""`/auth/*` and `/api-keys` (docs/api.md)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Status
from pydantic import Field

from accounts import data_rights, selectors, services
from accounts.auth import Customer, Superuser, principal_of
from accounts.ratelimits import (
    login_budget_ensure_left,
    login_rate_limit_enforce,
    refresh_rate_limit_enforce,
    register_rate_limit_enforce,
)
from accounts.schemas import (
    ApiKeyCreatedOut,
    ApiKeyIn,
    ApiKeyOut,
    ApiKeyPageOut,
    MeOut,
    PasswordGrantIn,
    RefreshIn,
    RegisterIn,
    RevokeIn,
    TokenIn,
    TokenOut,
    UserOut,
)
from accounts.scopes import ADMIN, CONVERSATIONS_READ, format_scopes, parse_scope_string
from core.errors import ParleyError
from core.ids import PathId
from core.parsing import form_fields
from core.request_context import CallContext
from core.schemas import (
    AUTHENTICATED_ERRORS,
    BODY_ERRORS,
    PageParams,
    StrictIn,
    error_responses,
    optional_body,
    validate_body,
)

auth_router = Router(tags=["auth"])
api_keys_router = Router(tags=["api-keys"])


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
    response={200: TokenOut, **error_responses(401, 415, 429, *BODY_ERRORS)},
    openapi_extra={"requestBody": _TOKEN_REQUEST_BODY},
    summary="Get an access and refresh token (JSON or OAuth2 password form)",
)
def token_obtain(request: HttpRequest, response: HttpResponse) -> dict[str, Any]:
    payload = _token_request(request)
    rate = login_rate_limit_enforce(request=request, username=payload.username)
    if rate is not None:
        rate.apply_headers(response)
    user = services.user_authenticate(
        request=request, username=payload.username, password=payload.password
    )
    requested = parse_scope_string(payload.scope) if payload.scope is not None else None
    return services.token_pair_issue(user=user, requested_scopes=requested).as_response()


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
    auth=Customer(),
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 415, *BODY_ERRORS)},
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": RevokeIn.model_json_schema()}},
        }
    },
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
    auth=Customer(),
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
    }


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
    auth=Customer(),
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 409, 429, *BODY_ERRORS)},
    summary="Erase your account and everything that is yours (asks for your password)",
)
def me_delete(request: HttpRequest, payload: AccountDeleteIn) -> Status[None]:
    user = principal_of(request).user
    # Limited like sign-in, since this endpoint also answers "is this the password?": refused
    # once the sign-in budget is spent, and a wrong password spends it. The right one spends
    # nothing, so a stolen access token cannot lock its owner out of signing in by calling
    # this with guesses — only the guesses count, as they would on the sign-in route.
    login_budget_ensure_left(request=request, username=user.username)
    try:
        data_rights.user_erase_self(
            user=user, password=payload.password, context=CallContext.from_request(request)
        )
    except data_rights.WrongPassword:
        login_rate_limit_enforce(request=request, username=user.username)
        raise
    return Status(204, None)


# --- API keys -----------------------------------------------------------------------------------


@api_keys_router.post(
    "",
    auth=Superuser(scopes=[ADMIN]),
    response={201: ApiKeyCreatedOut, **error_responses(*AUTHENTICATED_ERRORS, *BODY_ERRORS)},
    summary="Create an API key (the key is shown once)",
)
def api_key_create(request: HttpRequest, payload: ApiKeyIn) -> Status[dict[str, Any]]:
    key, raw = services.api_key_create(
        actor=principal_of(request).user,
        name=payload.name,
        owner_id=payload.owner_id,
        scopes=list(payload.scopes),
        expires_at=payload.expires_at,
    )
    return Status(
        201,
        {
            "id": key.pk,
            "name": key.name,
            "key": raw,
            "owner_id": key.owner_id,
            "scopes": key.scopes,
            "expires_at": key.expires_at,
        },
    )


@api_keys_router.get(
    "",
    auth=Superuser(scopes=[ADMIN]),
    response={200: ApiKeyPageOut, **error_responses(400, *AUTHENTICATED_ERRORS, 422)},
    summary="List API keys (never their secrets)",
)
def api_key_list(request: HttpRequest, params: Query[PageParams]) -> dict[str, Any]:
    items, next_cursor = selectors.api_key_page(cursor=params.cursor, limit=params.limit)
    return {"items": items, "next_cursor": next_cursor}


@api_keys_router.delete(
    "/{api_key_id}",
    auth=Superuser(scopes=[ADMIN]),
    response={204: None, **error_responses(*AUTHENTICATED_ERRORS, 404, 422)},
    summary="Revoke an API key; it stops working at once",
)
def api_key_revoke(request: HttpRequest, api_key_id: PathId) -> Status[None]:
    services.api_key_revoke(actor=principal_of(request).user, api_key_id=api_key_id)
    return Status(204, None)


__all__ = ["ApiKeyOut", "api_keys_router", "auth_router"]
