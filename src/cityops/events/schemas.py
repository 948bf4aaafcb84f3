from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ReportIn(BaseModel):
    description: str = Field(min_length=1, max_length=2000)
    source: str | None = Field(default=None, max_length=20)
    category: str | None = Field(default=None, max_length=8)
    urgency: str = Field(default="normal", max_length=10)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    region_code: str | None = Field(default=None, pattern=r"^\d{6}(\d{3}){0,3}$")
    address: str = Field(default="", max_length=200)
    reporter_name: str | None = Field(default=None, max_length=50)
    reporter_phone: str | None = Field(default=None, max_length=20)
    follow: bool = True
    idempotency_key: str | None = Field(default=None, min_length=8, max_length=64)
    attachments: list[int] = Field(default_factory=list, max_length=9)


class ActionIn(BaseModel):
    note: str = Field(default="", max_length=2000)
    category: str | None = Field(default=None, max_length=8)
    urgency: str | None = Field(default=None, max_length=10)
    unit: str | None = Field(default=None, max_length=40)
    assist_units: list[str] = Field(default_factory=list, max_length=10)
    master: str | None = Field(default=None, max_length=20)
    hours: float | None = Field(default=None, gt=0, le=720)
    extension_id: int | None = Field(default=None, ge=1)
    approve: bool | None = None
    satisfied: bool | None = None
    evidence: list[int] = Field(default_factory=list, max_length=9)
    version: int | None = Field(
        default=None, ge=1, description="optimistic lock: the version you saw"
    )


class EventOut(BaseModel):
    id: int
    at: datetime
    action: str
    actor_name: str
    actor_kind: str
    unit_code: str | None
    from_state: str | None
    to_state: str | None
    note: str
    data: dict[str, Any]


class CaseOut(BaseModel):
    code: str
    state: str
    level: str
    source: str
    category: str | None
    category_name: str | None
    description: str
    address: str
    lat: float | None
    lon: float | None
    region_code: str
    urgency: str
    unit: str | None
    unit_name: str | None
    deadline_at: datetime | None
    overdue: bool
    is_problem: bool
    rework_count: int
    units_passed: int
    satisfied: bool | None
    reporter_name: str | None
    reporter_phone: str | None
    created_at: datetime
    closed_at: datetime | None
    version: int


class CaseDetail(CaseOut):
    allowed_actions: list[str]
    timeline: list[EventOut]
    master: str | None
    duplicates: list[str]


class CasePage(BaseModel):
    items: list[CaseOut]
    total: int
    limit: int
    offset: int
    counts: dict[str, int]


class CategoryOut(BaseModel):
    code: str
    name: str
    parent: str | None
    kind: str
    owner: str | None
    clock: str
    limit_urgent_h: float
    limit_normal_h: float
    keywords: list[str]
    active: bool


class CategoryPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=50)
    owner: str | None = Field(default=None, max_length=40)
    clock: str | None = Field(default=None, pattern="^(working|natural)$")
    limit_urgent_h: float | None = Field(default=None, gt=0, le=2000)
    limit_normal_h: float | None = Field(default=None, gt=0, le=2000)
    active: bool | None = None


class UnitRef(BaseModel):
    code: str
    name: str
    kind: str
