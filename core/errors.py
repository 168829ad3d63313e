"""Errors shared by REST, websocket and admin entry points.

Services raise these; the API turns them into the error responses of docs/api.md
(config/api.py), the websocket consumers into `error` frames or close codes. Each carries its
HTTP status so the mapping lives in one place.
"""

from __future__ import annotations


class ParleyError(Exception):
    status_code = 400
    default_detail = "Bad request"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)

    def headers(self) -> dict[str, str]:
        return {}

    def body_extra(self) -> dict[str, object]:
        """Fields beside `detail` in the error body (e.g. `mfa_required`)."""
        return {}


class NotAuthenticated(ParleyError):
    """401. `credentials_presented` decides whether WWW-Authenticate names invalid_token."""

    status_code = 401
    default_detail = "Authentication credentials were not provided or are invalid"

    def __init__(self, detail: str | None = None, *, credentials_presented: bool = True) -> None:
        super().__init__(detail)
        self.credentials_presented = credentials_presented

    def headers(self) -> dict[str, str]:
        if self.credentials_presented:
            return {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        return {"WWW-Authenticate": "Bearer"}


class InsufficientScope(ParleyError):
    status_code = 403

    def __init__(self, scope: str) -> None:
        super().__init__(f"This action needs the '{scope}' scope")
        self.scope = scope

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{self.scope}"'}


class PermissionDenied(ParleyError):
    status_code = 403
    default_detail = "You do not have permission to perform this action"


class NotFound(ParleyError):
    status_code = 404
    default_detail = "Not found"


class Conflict(ParleyError):
    status_code = 409
    default_detail = "The request conflicts with the current state"


class UnprocessableRequest(ParleyError):
    """422 for rules beyond the schema (a weak password, an idempotency key reused with another
    body). Rendered like ninja's validation errors so every 422 has one shape."""

    status_code = 422
    default_detail = "Unprocessable request"

    def __init__(self, detail: str, *, loc: tuple[str, ...], type: str = "value_error") -> None:
        super().__init__(detail)
        self.loc = loc
        self.type = type

    def errors(self) -> list[dict[str, object]]:
        return [{"loc": list(self.loc), "msg": self.detail, "type": self.type}]


class RateLimited(ParleyError):
    status_code = 429
    default_detail = "Too many requests"

    def __init__(self, *, limit: int, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.limit = limit
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after),
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(self.retry_after),
        }
