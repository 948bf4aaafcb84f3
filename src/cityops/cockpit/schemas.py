"""The cockpit summary's JSON shape."""

from __future__ import annotations

import datetime as dt
from datetime import datetime

from pydantic import BaseModel, Field


class RegionInfo(BaseModel):
    code: str
    name: str
    level: str
    child_level: str | None = Field(description="level of the regions drawn inside it, if any")
    center: tuple[float, float] = Field(description="[lon, lat]")
    bbox: tuple[float, float, float, float] = Field(
        description="[min_lon, min_lat, max_lon, max_lat]"
    )


class Crumb(BaseModel):
    code: str
    name: str
    level: str
    in_scope: bool = Field(description="whether the caller may open this level")


class Today(BaseModel):
    date: dt.date = Field(description="today in the display time zone (Asia/Shanghai)")
    intake: int = Field(description="cases reported today")
    closed: int = Field(description="closures today (核查结案, verify_ok)")
    open: int = Field(description="cases open now (reported … handled)")
    overdue: int = Field(description="open cases past their time limit now")


class Rates(BaseModel):
    days: int
    since: datetime
    until: datetime
    dispatched: int = Field(description="dispatched or self-handled (the evaluation's base)")
    closed: int
    closed_on_time: int
    closure_rate: float | None = Field(description="结案率 = closed / dispatched")
    on_time_closure_rate: float | None = Field(description="按期结案率 = on time / closed")


class Count(BaseModel):
    key: str
    name: str = ""
    count: int


class Categories(BaseModel):
    items: list[Count] = Field(description="the ten most frequent categories, most first")
    other: int = Field(description="cases of every other category")


class Trend(BaseModel):
    days: list[dt.date]
    intake: list[int]
    closed: list[int]


class Alarms(BaseModel):
    critical: int
    major: int
    minor: int
    warning: int
    total: int = Field(description="open and not shelved")
    unacked: int
    shelved: int


class Devices(BaseModel):
    total: int
    online: int
    offline: int


class EvacuationProgress(BaseModel):
    state: str
    households: int
    at_home: int = Field(description="persons still at home (pending, notified, refused …)")
    evacuated: int
    sheltered: int
    total: int


class ActiveWarning(BaseModel):
    code: str
    level: str
    state: str
    headline: str
    region_code: str
    risk_point: str
    risk_point_name: str
    hazard: str
    proposed_at: datetime
    issued_at: datetime | None
    evacuation: EvacuationProgress | None


class RiskLevels(BaseModel):
    red: int
    orange: int
    yellow: int
    blue: int
    none: int
    total: int


class ChildCount(BaseModel):
    code: str
    open: int
    overdue: int


class Summary(BaseModel):
    region: RegionInfo
    breadcrumb: list[Crumb]
    generated_at: datetime
    today: Today
    rates: Rates
    by_source: list[Count]
    by_category: Categories
    trend: Trend
    alarms: Alarms
    devices: Devices
    warnings: list[ActiveWarning]
    risk_points: RiskLevels = Field(description="active risk points by warning colour")
    children: list[ChildCount] = Field(description="open and overdue cases per child region")
