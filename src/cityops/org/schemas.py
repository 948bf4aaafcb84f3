from __future__ import annotations

from pydantic import BaseModel


class UnitOut(BaseModel):
    code: str
    name: str
    short_name: str
    kind: str
    region_code: str
    duties: str
    one_window: bool


class OnDutyOut(BaseModel):
    grid_code: str
    at: str
    person_code: str | None
    name: str | None
    mobile: str | None
    title: str | None


class PersonOut(BaseModel):
    code: str
    name: str
    mobile: str | None
    title: str
    unit_code: str | None
    region_code: str
    roles: list[str]
    masked: bool
