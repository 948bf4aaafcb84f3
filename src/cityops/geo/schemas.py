from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RegionRefOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    level: str


class RegionOut(RegionRefOut):
    parent_code: str | None
    center: tuple[float, float] = Field(description="[lon, lat] of a point inside the region")
    bbox: tuple[float, float, float, float] = Field(
        description="[min_lon, min_lat, max_lon, max_lat]"
    )
    area_km2: float
    synthetic: bool = Field(description="true when the geometry is generated, not surveyed")


class RegionDetail(RegionOut):
    geometry: dict[str, Any]
    ancestors: list[RegionRefOut]
    children_count: int


class RegionPage(BaseModel):
    items: list[RegionOut]
    total: int
    limit: int
    offset: int


class LocationOut(BaseModel):
    lat: float
    lon: float
    district: RegionRefOut
    town: RegionRefOut | None
    village: RegionRefOut | None
    grid: RegionRefOut | None
