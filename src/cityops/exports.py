"""Plain-file exports of the reference data (regions GeoJSON, units / people / duty CSV).

Byte-stable: ordered by code, no timestamps, so two builds of the same district compare equal.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from cityops.auth import audit
from cityops.geo import service as geo
from cityops.geo.models import Region
from cityops.org.models import DutyShift, Person, PersonRole, Unit
from cityops.org.roles import Role
from cityops.privacy import mask_mobile, mask_name


def export_all(session: Session, folder: Path, *, unmask: bool = False) -> list[Path]:
    """Phone numbers (and citizens' names) are masked unless ``unmask``, which is audited."""
    folder.mkdir(parents=True, exist_ok=True)
    regions = session.scalars(select(Region).order_by(Region.code)).all()
    collection = geo.feature_collection(regions)
    collection["metadata"] = {
        "synthetic_geometry": any(r.synthetic for r in regions),
        "note": "Regions flagged synthetic have generated, not surveyed, boundaries.",
    }
    paths = [
        folder / "regions.geojson",
        folder / "units.csv",
        folder / "people.csv",
        folder / "duty.csv",
    ]
    paths[0].write_text(
        json.dumps(collection, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n",
        encoding="utf-8",
    )
    parent = aliased(Unit)
    _write_csv(
        paths[1],
        ["code", "name", "short_name", "kind", "region", "parent", "one_window", "duties"],
        session.execute(
            select(
                Unit.code,
                Unit.name,
                Unit.short_name,
                Unit.kind,
                Region.code,
                parent.code,
                Unit.one_window,
                Unit.duties,
            )
            .join(Region, Unit.region_id == Region.id)
            .outerjoin(parent, Unit.parent_id == parent.id)
            .order_by(Unit.code)
        ),
    )
    roles: dict[int, list[str]] = {pid: [] for pid in session.scalars(select(Person.id))}
    for pid, role in session.execute(
        select(PersonRole.person_id, PersonRole.role).order_by(PersonRole.role)
    ):
        roles[pid].append(role)
    if unmask:
        audit.record(session, "unmask", "people", summary={"export": str(paths[2])})

    def shown(name: str, mobile: str | None, pid: int) -> tuple[str, str | None]:
        if unmask:
            return name, mobile
        citizen = Role.citizen.value in roles[pid]
        return (mask_name(name) if citizen else name), mask_mobile(mobile)

    _write_csv(
        paths[2],
        ["code", "name", "mobile", "unit", "region", "title", "roles"],
        (
            (code, *shown(name, mobile, pid), unit, region, title, "|".join(roles[pid]))
            for pid, code, name, mobile, unit, region, title in session.execute(
                select(
                    Person.id,
                    Person.code,
                    Person.name,
                    Person.mobile,
                    Unit.code,
                    Region.code,
                    Person.title,
                )
                .outerjoin(Unit, Person.unit_id == Unit.id)
                .join(Region, Person.region_id == Region.id)
                .order_by(Person.code)
            )
        ),
    )
    _write_csv(
        paths[3],
        ["grid", "person", "kind", "starts_at", "ends_at", "note"],
        (
            (grid, person, kind, starts.isoformat(), ends.isoformat() if ends else "", note)
            for grid, person, kind, starts, ends, note in session.execute(
                select(
                    Region.code,
                    Person.code,
                    DutyShift.kind,
                    DutyShift.starts_at,
                    DutyShift.ends_at,
                    DutyShift.note,
                )
                .join(Region, DutyShift.grid_id == Region.id)
                .join(Person, DutyShift.person_id == Person.id)
                .order_by(Region.code, DutyShift.starts_at, Person.code)
            )
        ),
    )
    return paths


def _write_csv(path: Path, header: list[str], rows: object) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)  # type: ignore[arg-type]
