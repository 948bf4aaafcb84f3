"""Who should handle a case: routing rules first (most specific place × category wins), then
the standard precedence — components go to their owner before the territory, events to the
territory before the owner (GB/T 30428)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.catalog.models import Category, CategoryKind
from cityops.events.lifecycle import dispatch_targets
from cityops.events.models import Case, Level, RoutingRule
from cityops.org.models import Unit


@dataclass(frozen=True)
class Suggestion:
    unit: Unit | None  # None: send the case down to the level below (territory)
    action: str  # dispatch | delegate | self_handle
    reason: str


def suggest(session: Session, case: Case) -> list[Suggestion]:
    category = session.get(Category, case.category_id) if case.category_id else None
    targets = {u.id: u for u in dispatch_targets(session, case)}
    out: list[Suggestion] = []
    seen: set[int] = set()

    def add(unit: Unit | None, action: str, reason: str) -> None:
        if unit is not None:
            if unit.id in seen or unit.id not in targets:
                return
            seen.add(unit.id)
        out.append(Suggestion(unit, action, reason))

    rules = sorted(
        (
            (rule, unit)
            for rule, unit in session.execute(
                select(RoutingRule, Unit)
                .join(Unit, RoutingRule.unit_id == Unit.id)
                .where(RoutingRule.level == case.level)
            )
            if case.region_code.startswith(rule.region_code)
            and (
                not rule.category_code
                or (category is not None and category.code.startswith(rule.category_code))
            )
        ),
        key=lambda ru: (len(ru[0].region_code), len(ru[0].category_code)),
        reverse=True,
    )
    for rule, unit in rules:
        add(
            unit,
            "dispatch",
            f"路由规则 / routing rule #{rule.id}" + (f": {rule.note}" if rule.note else ""),
        )

    owner = (
        session.get(Unit, category.owner_unit_id) if category and category.owner_unit_id else None
    )
    territory: list[Suggestion] = []
    if case.level == Level.district and len(case.region_code) >= 9:
        territory.append(
            Suggestion(None, "delegate", "属地镇街处置 / the town of the place handles it")
        )
    elif case.level == Level.town:
        station = session.scalar(select(Unit).where(Unit.code == f"VS-{case.region_code[:12]}"))
        if station is not None and station.id in targets:
            territory.append(
                Suggestion(station, "dispatch", "属地村（社区）/ the village of the place")
            )
    elif case.level == Level.village:
        territory.append(
            Suggestion(None, "self_handle", "村（社区）自处理 / handled in the village")
        )
    owner_first = category is None or category.kind == CategoryKind.component
    if owner_first and owner is not None:
        add(owner, "dispatch", "部件权属单位优先 / the component's owner first")
    for s in territory:
        add(s.unit, s.action, s.reason)
    if not owner_first and owner is not None:
        add(owner, "dispatch", "事件主管部门 / the department in charge of this event")
    return out


def list_rules(session: Session) -> list[tuple[RoutingRule, Unit]]:
    rows = session.execute(
        select(RoutingRule, Unit)
        .join(Unit, RoutingRule.unit_id == Unit.id)
        .order_by(RoutingRule.id)
    ).all()
    return [(r, u) for r, u in rows]


def add_rule(
    session: Session,
    *,
    level: str,
    unit_code: str,
    category_code: str = "",
    region_code: str = "",
    note: str = "",
) -> tuple[RoutingRule, Unit]:
    from cityops.errors import InvalidInput

    if level not in ("district", "town", "village"):
        raise InvalidInput("层级须为 district、town 或 village / level", field="level")
    unit = session.scalar(select(Unit).where(Unit.code == unit_code, Unit.active.is_(True)))
    if unit is None:
        raise InvalidInput(f"单位 {unit_code} 不存在 / unknown unit", field="unit_code")
    if (
        category_code
        and session.scalar(
            select(Category.id)
            .where(Category.code.startswith(category_code, autoescape=True))
            .limit(1)
        )
        is None
    ):
        raise InvalidInput(
            f"没有以 {category_code} 开头的类别 / no such category", field="category_code"
        )
    rule = RoutingRule(
        category_code=category_code,
        region_code=region_code,
        level=level,
        unit_id=unit.id,
        note=note,
    )
    session.add(rule)
    session.flush()
    return rule, unit


def delete_rule(session: Session, rule_id: int) -> None:
    from cityops.errors import NotFound

    rule = session.get(RoutingRule, rule_id)
    if rule is None:
        raise NotFound(f"路由规则 {rule_id} 不存在 / no such routing rule", field="rule_id")
    session.delete(rule)
    session.flush()
