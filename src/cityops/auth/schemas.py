from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=100, description="username or mobile number")
    password: str = Field(min_length=1, max_length=256)


class AccountOut(BaseModel):
    id: int
    username: str | None
    mobile: str | None
    name: str
    roles: list[str]
    region_code: str
    unit_code: str | None
    active: bool
    must_change_password: bool
    last_login_at: datetime | None


class LoginOut(BaseModel):
    account: AccountOut
    csrf_token: str
    expires_at: datetime


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_expires_in: int


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class PasswordChangeIn(BaseModel):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class AccountIn(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    roles: list[str] = Field(min_length=1, max_length=11)
    region_code: str = Field(pattern=r"^\d{6}(\d{3}){0,3}$")
    unit_code: str | None = Field(default=None, max_length=40)
    username: str | None = Field(default=None, max_length=64)
    mobile: str | None = Field(default=None, max_length=20)
    password: str | None = Field(default=None, max_length=256)


class AccountPatch(BaseModel):
    name: str | None = Field(default=None, max_length=50)
    roles: list[str] | None = Field(default=None, min_length=1, max_length=11)
    region_code: str | None = Field(default=None, pattern=r"^\d{6}(\d{3}){0,3}$")
    unit_code: str | None = Field(default=None, max_length=40)
    mobile: str | None = Field(default=None, max_length=20)
    active: bool | None = None


class TemporaryPasswordOut(BaseModel):
    account_id: int
    temporary_password: str = Field(description="shown once; the user must change it at log-in")


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1, max_length=10)
    restrict: dict[str, str] = Field(default_factory=dict, max_length=10)
    expires_at: datetime | None = None


class ApiKeyOut(BaseModel):
    id: int
    prefix: str
    name: str
    scopes: list[str]
    restrict: dict[str, Any]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the key itself, shown only now; store it safely")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor_kind: str
    actor_id: str
    actor_name: str
    action: str
    entity: str
    entity_id: str
    summary: dict[str, Any]
    ip: str
    note: str


class AuditPage(BaseModel):
    items: list[AuditOut]
    total: int
    limit: int
    offset: int
