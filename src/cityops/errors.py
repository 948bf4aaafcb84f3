"""Domain errors carry their HTTP status; one handler renders them all."""

from __future__ import annotations

from typing import Any


class CityOpsError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            body["fields"] = [{"field": self.field, "message": self.message}]
        body.update(self.extra)
        return {"error": body}


class Unauthenticated(CityOpsError):
    status_code = 401
    code = "unauthenticated"

    def __init__(self, message: str = "请先登录 / authentication required", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="cityops"'})
        super().__init__(message, **kw)


class Forbidden(CityOpsError):
    status_code = 403
    code = "forbidden"


class TooManyAttempts(CityOpsError):
    status_code = 429
    code = "too_many_attempts"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(
            message
            or f"尝试过多，请 {retry_after} 秒后再试 / too many attempts; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )


class NotFound(CityOpsError):
    status_code = 404
    code = "not_found"


class Conflict(CityOpsError):
    status_code = 409
    code = "conflict"


class InvalidInput(CityOpsError):
    status_code = 422
    code = "invalid_input"
