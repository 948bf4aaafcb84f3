"""Domain errors carry their HTTP status; one handler renders them all."""

from __future__ import annotations

from typing import Any


class CityOpsError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            body["fields"] = [{"field": self.field, "message": self.message}]
        body.update(self.extra)
        return {"error": body}


class NotFound(CityOpsError):
    status_code = 404
    code = "not_found"


class Conflict(CityOpsError):
    status_code = 409
    code = "conflict"


class InvalidInput(CityOpsError):
    status_code = 422
    code = "invalid_input"
