"""The category catalogue: loaded from YAML (package default or a district's own file), edited
through the API by administrators."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.catalog.calendar import WorkCalendar
from cityops.catalog.models import Category, CategoryKind, Clock
from cityops.errors import InvalidInput, NotFound
from cityops.org.models import Unit, UnitKind


def default_catalogue() -> dict[str, Any]:
    text = resources.files("cityops.catalog").joinpath("data/categories.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


@lru_cache(maxsize=1)
def calendar() -> WorkCalendar:
    return WorkCalendar.load()


@dataclass(frozen=True)
class LoadResult:
    created: int
    updated: int
    unresolved_owners: list[str]


def load(session: Session, data: dict[str, Any] | None = None) -> LoadResult:
    """Upsert classes and categories by code. Owners are department short names, resolved to
    the department units present (a missing department is reported, not fatal)."""
    data = data if data is not None else default_catalogue()
    classes = data.get("classes")
    if not isinstance(classes, list) or not classes:
        raise InvalidInput("catalogue has no classes", field="classes")
    departments = {
        u.short_name: u
        for u in session.scalars(select(Unit).where(Unit.kind == UnitKind.department.value))
    }
    existing = {c.code: c for c in session.scalars(select(Category))}
    created = updated = 0
    unresolved: set[str] = set()

    def upsert(code: str, values: dict[str, Any]) -> Category:
        nonlocal created, updated
        row = existing.get(code)
        if row is None:
            row = Category(code=code, **values)
            session.add(row)
            existing[code] = row
            created += 1
        else:
            for key, value in values.items():
                setattr(row, key, value)
            updated += 1
        return row

    for cls in classes:
        kind = CategoryKind(cls["kind"]).value
        parent = upsert(
            str(cls["code"]),
            {
                "name": cls["name"],
                "parent_id": None,
                "kind": kind,
                "clock": Clock.working.value,
                "limit_urgent_h": 1.0,
                "limit_normal_h": 1.0,
                "keywords": [],
            },
        )
        session.flush()
        for leaf in cls.get("categories", []):
            owner = leaf.get("owner")
            unit = departments.get(owner) if owner else None
            if owner and unit is None:
                unresolved.add(str(owner))
            limits = leaf["limits"]
            upsert(
                str(leaf["code"]),
                {
                    "name": leaf["name"],
                    "parent_id": parent.id,
                    "kind": CategoryKind(leaf.get("kind", kind)).value,
                    "owner_short_name": owner,
                    "owner_unit_id": unit.id if unit else None,
                    "clock": Clock(leaf.get("clock", "working")).value,
                    "limit_urgent_h": float(limits["urgent"]),
                    "limit_normal_h": float(limits["normal"]),
                    "keywords": list(leaf.get("keywords", [])),
                },
            )
    session.flush()
    return LoadResult(created, updated, sorted(unresolved))


def load_file(session: Session, path: Path) -> LoadResult:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}", field="file") from None
    try:
        return load(session, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"catalogue format: {exc}", field="file") from None


def get(session: Session, code: str) -> Category:
    category = session.scalar(select(Category).where(Category.code == code))
    if category is None:
        raise NotFound(f"类别 {code} 不存在 / category {code} not found", field="category")
    return category


def leaf(session: Session, code: str, *, field: str = "category") -> Category:
    """A usable (active leaf) category for a case, or a 422 naming the field."""
    category = session.scalar(select(Category).where(Category.code == code))
    if category is None or category.parent_id is None or not category.active:
        raise InvalidInput(f"未知或不可用的类别 {code!r} / unknown category", field=field)
    return category


def leaves(session: Session) -> list[tuple[str, str]]:
    """(code, name) of the categories a case may take (active leaves), in code order."""
    rows = session.execute(
        select(Category.code, Category.name)
        .where(Category.parent_id.is_not(None), Category.active.is_(True))
        .order_by(Category.code)
    )
    return [(code, name) for code, name in rows]


def tree(session: Session) -> Sequence[Category]:
    return session.scalars(select(Category).order_by(Category.code)).all()


def update(session: Session, code: str, **changes: Any) -> Category:
    """Edit a category's terms (limits, owner, clock, name, active)."""
    category = get(session, code)
    if "owner" in changes:
        owner = changes.pop("owner") or None
        unit = None
        if owner:
            unit = session.scalar(
                select(Unit).where(Unit.kind == UnitKind.department.value, Unit.short_name == owner)
            )
            if unit is None:
                raise InvalidInput(
                    f"没有简称为 {owner} 的部门 / no department {owner!r}", field="owner"
                )
        category.owner_short_name = owner
        category.owner_unit_id = unit.id if unit else None
    for key, value in changes.items():
        setattr(category, key, value)
    if category.limit_urgent_h > category.limit_normal_h:
        raise InvalidInput(
            "紧急时限不能长于一般时限 / the urgent limit must not exceed the normal one",
            field="limit_urgent_h",
        )
    session.flush()
    return category
