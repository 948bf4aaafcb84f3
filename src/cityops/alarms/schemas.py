"""What the alarm API and the workbench's alarm forms accept: rules, notes, assignment and
shelving — one set of limits for both."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from cityops.alarms.service import MAX_SHELVE_H


class RuleIn(BaseModel):
    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$")
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["threshold", "rate", "no_data", "composite"]
    scope: Literal["device_type", "group", "device", "site"]
    scope_value: str = Field(min_length=1, max_length=64)
    metric: str | None = Field(default=None, max_length=32)
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["critical", "major", "minor", "warning"]
    latch: bool = False
    open_case: bool = False
    case_category: str | None = Field(default=None, max_length=20)
    case_urgency: Literal["urgent", "normal"] = "normal"
    case_route: bool = False
    enabled: bool = True


class RulePatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    scope: Literal["device_type", "group", "device", "site"] | None = None
    scope_value: str | None = Field(default=None, min_length=1, max_length=64)
    metric: str | None = Field(default=None, max_length=32)
    params: dict[str, Any] | None = None
    severity: Literal["critical", "major", "minor", "warning"] | None = None
    latch: bool | None = None
    open_case: bool | None = None
    case_category: str | None = Field(default=None, max_length=20)
    case_urgency: Literal["urgent", "normal"] | None = None
    case_route: bool | None = None
    enabled: bool | None = None


class NoteIn(BaseModel):
    note: str = Field(default="", max_length=2000)


class AssignIn(BaseModel):
    person_id: int | None


class ShelveIn(BaseModel):
    minutes: float = Field(gt=0, le=MAX_SHELVE_H * 60)
    reason: str = Field(min_length=1, max_length=2000)
