"""Evacuation (避险转移): every threatened household in exactly one status, updated from the
field, counted by SQL; one task per grid worker; closed with a record when the warning lifts.

Statuses: pending → notified → evacuated → sheltered, or refused / unreachable at any point.
No household goes back to pending (it was reached once). Each change is logged with who and
when; an idempotency key makes a retried change from a phone that lost signal a no-op.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, select
from sqlalchemy.orm import Session

from cityops.auth import audit
from cityops.errors import Conflict, InvalidInput, NotFound
from cityops.live import service as live
from cityops.org import service as org
from cityops.org.models import Person
from cityops.warning import service as registry
from cityops.warning.models import (
    AT_HOME,
    EvacStatus,
    Evacuation,
    EvacuationEntry,
    EvacuationLog,
    Household,
    RiskPoint,
    Shelter,
    Warning,
    ZoneHousehold,
)

STATUSES = [s.value for s in EvacStatus]


def get(session: Session, evacuation_id: int) -> Evacuation:
    evacuation = session.get(Evacuation, evacuation_id)
    if evacuation is None:
        raise NotFound(f"转移任务 {evacuation_id} 不存在 / no such evacuation")
    return evacuation


def of_warning(session: Session, warning: Warning) -> Evacuation | None:
    return session.scalar(select(Evacuation).where(Evacuation.warning_id == warning.id))


def open_for(
    session: Session, warning: Warning, point: RiskPoint, who: str, now: datetime
) -> Evacuation:
    """Every active household in the zone, pending, with the grid worker on duty there."""
    existing = of_warning(session, warning)
    if existing is not None:
        return existing
    evacuation = Evacuation(
        warning_id=warning.id,
        risk_point_id=point.id,
        region_code=point.region_code,
        state="open",
        opened_at=now,
    )
    session.add(evacuation)
    session.flush()
    households = session.execute(
        select(Household.id, Household.region_code, Household.persons)
        .join(ZoneHousehold, ZoneHousehold.household_id == Household.id)
        .where(ZoneHousehold.risk_point_id == point.id, Household.active.is_(True))
    ).all()
    workers: dict[str, int | None] = {}
    for grid in sorted({g for _h, g, _p in households}):
        person = org.on_duty(session, grid, now)
        workers[grid] = person.id if person else None
    if households:
        session.execute(
            insert(EvacuationEntry),
            [
                {
                    "evacuation_id": evacuation.id,
                    "household_id": hid,
                    "grid_code": grid,
                    "persons": persons,
                    "status": "pending",
                    "worker_id": workers[grid],
                    "updated_at": now,
                    "updated_by": who,
                }
                for hid, grid, persons in households
            ],
        )
    audit.record(
        session,
        "evacuation.open",
        "evacuation",
        evacuation.id,
        {"warning": warning.code, "households": len(households)},
    )
    live.publish(
        session,
        "evacuations",
        "opened",
        evacuation.id,
        at=now,
        region_code=point.region_code,
        payload={"warning": warning.code, "households": len(households)},
    )
    return evacuation


@dataclass(frozen=True)
class Change:
    entry: EvacuationEntry
    changed: bool


def set_status(
    session: Session,
    evacuation: Evacuation,
    household_code: str,
    status: str,
    who: str,
    now: datetime,
    *,
    shelter_code: str | None = None,
    note: str = "",
    key: str | None = None,
) -> Change:
    if key:
        done = session.scalar(select(EvacuationLog).where(EvacuationLog.key == key))
        if done is not None:
            entry = session.get(EvacuationEntry, done.entry_id)
            assert entry is not None
            household = session.get(Household, entry.household_id)
            if (
                entry.evacuation_id != evacuation.id
                or household is None
                or (household.code != household_code)
            ):
                raise Conflict(
                    "该幂等键已用于另一住户 / this idempotency key was used for another household",
                    field="key",
                )
            return Change(entry, False)
    if evacuation.state != "open":
        raise Conflict("转移已结束 / this evacuation is closed", field="status")
    if status not in STATUSES:
        raise InvalidInput(f"未知状态 {status!r} / unknown status", field="status")
    entry = session.scalar(
        select(EvacuationEntry)
        .join(Household, Household.id == EvacuationEntry.household_id)
        .where(EvacuationEntry.evacuation_id == evacuation.id, Household.code == household_code)
        .with_for_update()
    )
    if entry is None:
        raise NotFound(f"住户 {household_code} 不在本次转移范围 / household not in this evacuation")
    if status == "pending" and entry.status != "pending":
        raise Conflict(
            "已联系过的住户不能退回待通知 / a reached household cannot be pending again",
            field="status",
        )
    shelter: Shelter | None = None
    if status == "sheltered":
        if shelter_code:
            shelter = registry.get_shelter(session, shelter_code)
        elif entry.status == "sheltered" and entry.shelter_id is not None:
            # Reported sheltered again without naming the shelter: where they already are.
            shelter = session.get_one(Shelter, entry.shelter_id)
        else:
            choices = [
                s for s in registry.shelters_of(session, evacuation.risk_point_id) if s.active
            ]
            if not choices:
                raise InvalidInput("请指定安置点 / name the shelter", field="shelter")
            shelter = choices[0]
        if not shelter.active:
            raise InvalidInput(f"安置点 {shelter.name} 已停用 / shelter is closed", field="shelter")
        if entry.status != "sheltered" or entry.shelter_id != shelter.id:
            # Lock the shelter: two households sheltered at once must not both take its last
            # places (PostgreSQL; SQLite writers are serialised anyway).
            session.execute(select(Shelter.id).where(Shelter.id == shelter.id).with_for_update())
            used = registry.occupancy(session, [shelter.id]).get(shelter.id, 0)
            if used + entry.persons > shelter.capacity:
                raise Conflict(
                    f"安置点 {shelter.name} 已满（{used}/{shelter.capacity} 人）/ shelter is full",
                    field="shelter",
                )
    previous = entry.status
    changed = previous != status or (shelter is not None and entry.shelter_id != shelter.id)
    entry.status = status
    entry.shelter_id = (
        shelter.id if shelter else (entry.shelter_id if status == "sheltered" else None)
    )
    entry.note = note or entry.note
    entry.updated_at, entry.updated_by = now, who
    session.add(
        EvacuationLog(
            entry_id=entry.id,
            at=now,
            from_status=previous,
            to_status=status,
            who=who,
            note=note,
            key=key,
        )
    )
    if changed:
        audit.record(
            session,
            "evacuation.status",
            "evacuation",
            evacuation.id,
            {
                "household": household_code,
                "from": previous,
                "to": status,
                "shelter": shelter.code if shelter else None,
            },
        )
        live.publish(
            session,
            "evacuations",
            "status",
            evacuation.id,
            at=now,
            region_code=evacuation.region_code,
            payload={"household": household_code, "from": previous, "to": status},
        )
    session.flush()
    return Change(entry, changed)


def counts(session: Session, evacuation_id: int) -> dict[str, dict[str, int]]:
    """Households and persons by status (every status present, zeros included)."""
    out = {s: {"households": 0, "persons": 0} for s in STATUSES}
    for status, n, persons in session.execute(
        select(
            EvacuationEntry.status,
            func.count(),
            func.coalesce(func.sum(EvacuationEntry.persons), 0),
        )
        .where(EvacuationEntry.evacuation_id == evacuation_id)
        .group_by(EvacuationEntry.status)
    ):
        out[status] = {"households": int(n), "persons": int(persons)}
    return out


def board(session: Session, evacuation: Evacuation) -> dict[str, Any]:
    by_status = counts(session, evacuation.id)
    total = {
        "households": sum(v["households"] for v in by_status.values()),
        "persons": sum(v["persons"] for v in by_status.values()),
    }
    at_home = sum(by_status[s]["persons"] for s in AT_HOME)
    shelters = registry.shelters_of(session, evacuation.risk_point_id)
    used = registry.occupancy(session, [s.id for s in shelters])
    at_home_case = case((EvacuationEntry.status.in_(AT_HOME), EvacuationEntry.persons), else_=0)
    grids = [
        {"grid": g, "households": int(n), "persons": int(p), "at_home": int(h)}
        for g, n, p, h in session.execute(
            select(
                EvacuationEntry.grid_code,
                func.count(),
                func.sum(EvacuationEntry.persons),
                func.sum(at_home_case),
            )
            .where(EvacuationEntry.evacuation_id == evacuation.id)
            .group_by(EvacuationEntry.grid_code)
            .order_by(EvacuationEntry.grid_code)
        )
    ]
    return {
        "id": evacuation.id,
        "state": evacuation.state,
        "opened_at": evacuation.opened_at,
        "closed_at": evacuation.closed_at,
        "by_status": by_status,
        "total": total,
        "persons": {
            "at_home": at_home,
            "evacuated": by_status["evacuated"]["persons"],
            "sheltered": by_status["sheltered"]["persons"],
        },
        "shelters": [
            {
                "code": s.code,
                "name": s.name,
                "capacity": s.capacity,
                "occupancy": used.get(s.id, 0),
                "lat": s.lat,
                "lon": s.lon,
            }
            for s in shelters
        ],
        "grids": grids,
        "record": evacuation.record or None,
    }


def tasks(
    session: Session, evacuation: Evacuation, worker_id: int | None = None
) -> list[dict[str, Any]]:
    """One task per grid worker: their households, the ones still at home first."""
    query = (
        select(EvacuationEntry, Household, Person.code, Person.name)
        .join(Household, Household.id == EvacuationEntry.household_id)
        .outerjoin(Person, Person.id == EvacuationEntry.worker_id)
        .where(EvacuationEntry.evacuation_id == evacuation.id)
        .order_by(EvacuationEntry.grid_code, Household.code)
    )
    if worker_id is not None:
        query = query.where(EvacuationEntry.worker_id == worker_id)
    grouped: dict[tuple[str | None, str | None], list[dict[str, Any]]] = defaultdict(list)
    for entry, household, pcode, pname in session.execute(query):
        grouped[(pcode, pname)].append(
            {
                "household": household.code,
                "head_name": household.head_name,
                "address": household.address,
                "grid": entry.grid_code,
                "persons": entry.persons,
                "vulnerable": household.vulnerable,
                "phone": household.phone,
                "lat": household.lat,
                "lon": household.lon,
                "status": entry.status,
                "updated_at": entry.updated_at,
                "updated_by": entry.updated_by,
            }
        )
    out = []
    for (worker, worker_name), items in grouped.items():
        items.sort(key=lambda i: (i["status"] not in AT_HOME, i["household"]))
        out.append(
            {
                "worker": worker,
                "worker_name": worker_name or "（无在岗网格员 / nobody on duty）",
                "households": items,
                "open": sum(1 for i in items if i["status"] in AT_HOME),
            }
        )
    return sorted(out, key=lambda t: (t["worker"] is None, t["worker"] or ""))


def close(session: Session, evacuation: Evacuation, who: str, now: datetime) -> None:
    if evacuation.state == "closed":
        return
    snapshot = board(session, evacuation)
    evacuation.record = {
        "by_status": snapshot["by_status"],
        "total": snapshot["total"],
        "persons": snapshot["persons"],
        "shelters": [{k: s[k] for k in ("code", "occupancy")} for s in snapshot["shelters"]],
    }
    evacuation.state, evacuation.closed_at, evacuation.closed_by = "closed", now, who
    audit.record(session, "evacuation.close", "evacuation", evacuation.id, evacuation.record)
    live.publish(
        session,
        "evacuations",
        "closed",
        evacuation.id,
        at=now,
        region_code=evacuation.region_code,
        payload=evacuation.record,
    )
