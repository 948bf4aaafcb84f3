"""What the warning API accepts. Output is built from rows in ``views.py``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

CODE = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}$"
Hazard = Literal["landslide", "collapse", "debris_flow", "subsidence", "flood", "unstable_slope"]
WarnLevel = Literal["blue", "yellow", "orange", "red"]
Status = Literal["pending", "notified", "evacuated", "sheltered", "refused", "unreachable"]


class MonitorIn(BaseModel):
    device: str = Field(min_length=1, max_length=64, description="device code")
    label: str | None = Field(default=None, max_length=40, description="e.g. GNSS-3")
    metric: str | None = Field(default=None, max_length=32, description="default by device type")
    v_uniform: float | None = Field(default=None, gt=0, le=1000, description="mm/day")


class RiskPointIn(BaseModel):
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=100)
    hazard: Hazard = "landslide"
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    zone: dict[str, Any] = Field(description="GeoJSON Polygon, [lon, lat]")
    town_leader: str | None = Field(default=None, max_length=40, description="person code")
    monitor: str | None = Field(default=None, max_length=40, description="person code (群测群防员)")
    route: str = Field(default="", max_length=2000)
    route_line: dict[str, Any] | None = None
    shelters: list[str] = Field(default_factory=list, max_length=20)
    monitors: list[MonitorIn] = Field(default_factory=list, max_length=100)
    settings: dict[str, Any] = Field(default_factory=dict)


class RiskPointPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    hazard: Hazard | None = None
    zone: dict[str, Any] | None = None
    town_leader: str | None = Field(default=None, max_length=40)
    monitor: str | None = Field(default=None, max_length=40)
    route: str | None = Field(default=None, max_length=2000)
    shelters: list[str] | None = Field(default=None, max_length=20)
    monitors: list[MonitorIn] | None = Field(default=None, max_length=100)
    settings: dict[str, Any] | None = None
    active: bool | None = None


class ShelterIn(BaseModel):
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=100)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    capacity: int = Field(ge=1, le=100_000)
    address: str = Field(default="", max_length=200)
    contact_name: str = Field(default="", max_length=50)
    contact_phone: str = Field(default="", max_length=20)


class HouseholdIn(BaseModel):
    code: str = Field(pattern=CODE)
    head_name: str = Field(min_length=1, max_length=50)
    address: str = Field(min_length=1, max_length=200)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    persons: int = Field(ge=1, le=100)
    vulnerable: dict[str, int] = Field(default_factory=dict, description="e.g. {'elderly': 2}")
    phone: str = Field(default="", max_length=20, pattern=r"^[0-9+\- ]*$")
    note: str = Field(default="", max_length=200)


class HouseholdPatch(BaseModel):
    head_name: str | None = Field(default=None, min_length=1, max_length=50)
    address: str | None = Field(default=None, min_length=1, max_length=200)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    persons: int | None = Field(default=None, ge=1, le=100)
    vulnerable: dict[str, int] | None = None
    phone: str | None = Field(default=None, max_length=20, pattern=r"^[0-9+\- ]*$")
    note: str | None = Field(default=None, max_length=200)
    active: bool | None = None


class ProposeIn(BaseModel):
    risk_point: str = Field(min_length=1, max_length=40)
    level: WarnLevel
    reason: str = Field(min_length=1, max_length=500, description="why, in words")


class DecisionIn(BaseModel):
    note: str = Field(default="", max_length=500)


class ConfirmIn(BaseModel):
    level: WarnLevel | None = Field(default=None, description="the commander may change it")
    note: str = Field(default="", max_length=500)


class UpdateIn(BaseModel):
    level: WarnLevel | None = None
    note: str = Field(min_length=1, max_length=500, description="what changed")


class LiftIn(BaseModel):
    note: str = Field(min_length=1, max_length=500, description="why it is safe again")


class StatusIn(BaseModel):
    status: Status
    shelter: str | None = Field(default=None, max_length=40, description="shelter code")
    note: str = Field(default="", max_length=200)
    key: str | None = Field(
        default=None, max_length=80, description="idempotency key (offline retries)"
    )
