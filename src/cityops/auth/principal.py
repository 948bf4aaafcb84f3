"""Who is asking: a person (session or bearer token) or a machine (API key)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement
from sqlalchemy.orm import InstrumentedAttribute

from cityops.auth.permissions import Permission


@dataclass(frozen=True)
class Principal:
    kind: str  # person | api_key
    id: int  # account id or api key id
    name: str
    roles: frozenset[str]
    permissions: frozenset[Permission]
    region_code: str  # scope: a code prefix (the district code sees everything)
    person_id: int | None = None
    unit_id: int | None = None
    via: str = ""  # session | token | api_key
    session_id: int | None = None
    restrict: dict[str, str] = field(default_factory=dict)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def sees(self, region_code: str) -> bool:
        """Whether a region (or anything located in it) is within this principal's scope."""
        return region_code.startswith(self.region_code)

    def scope(self, column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
        """SQL condition: a region-code column inside this principal's scope."""
        from cityops.geo.codes import within

        return within(column, self.region_code)


@dataclass(frozen=True)
class Who:
    """Who did it, as a timeline or a record shows it: a person, a key, or the system."""

    kind: str  # person | api_key | system
    name: str

    @classmethod
    def of(cls, principal: Principal) -> Who:
        return cls(principal.kind, principal.name)
