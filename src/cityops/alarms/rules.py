"""Alarm rules, managed by API and by YAML (``cityops rules load FILE``): one validated path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.alarms import conditions
from cityops.alarms.models import AlarmRule, Kind, Severity
from cityops.errors import Conflict, InvalidInput, NotFound

SCOPES = ("device_type", "group", "device", "site")
FIELDS = (
    "name",
    "kind",
    "scope",
    "scope_value",
    "metric",
    "params",
    "severity",
    "latch",
    "open_case",
    "case_category",
    "case_urgency",
    "case_route",
    "enabled",
)


def _check(session: Session, data: dict[str, Any], prefix: str = "") -> None:
    def bad(field: str, message: str) -> InvalidInput:
        return InvalidInput(message, field=prefix + field)

    code = data.get("code")
    if not isinstance(code, str) or not 1 <= len(code) <= 60:
        raise bad("code", "code: 1–60 个字符 / characters")
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        raise bad("name", "name: 1–100 个字符 / characters")
    if data.get("kind") not in {k.value for k in Kind}:
        raise bad("kind", "kind: threshold | rate | no_data | composite")
    if data.get("scope") not in SCOPES:
        raise bad("scope", "scope: device_type | group | device | site")
    if not isinstance(data.get("scope_value"), str) or not data["scope_value"]:
        raise bad("scope_value", "scope_value: 设备类型、分组、设备或站点编码 / a code")
    if data.get("severity") not in {s.value for s in Severity}:
        raise bad("severity", "severity: critical | major | minor | warning")
    if data.get("case_urgency", "normal") not in ("urgent", "normal"):
        raise bad("case_urgency", "case_urgency: urgent | normal")
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise bad("params", "params: 对象 / an object")
    metric = data.get("metric")
    if metric is not None and not isinstance(metric, str):
        raise bad("metric", "metric: 字符串 / a string")
    try:
        conditions.validate(str(data["kind"]), metric, params)
    except InvalidInput as exc:
        exc.field = prefix + (exc.field or "params")
        raise
    if data.get("open_case"):
        category = data.get("case_category")
        if category:
            from cityops.catalog import service as catalog

            try:
                catalog.leaf(session, category)
            except (InvalidInput, NotFound):
                raise bad(
                    "case_category", f"未知案件类别 {category!r} / unknown category"
                ) from None


def upsert(session: Session, data: dict[str, Any], now: datetime, prefix: str = "") -> AlarmRule:
    _check(session, data, prefix)
    rule = session.scalar(select(AlarmRule).where(AlarmRule.code == data["code"]))
    if rule is None:
        rule = AlarmRule(code=data["code"], created_at=now)
        session.add(rule)
    rule.name = data["name"]
    rule.kind = data["kind"]
    rule.scope = data["scope"]
    rule.scope_value = data["scope_value"]
    rule.metric = data.get("metric")
    rule.params = dict(data.get("params") or {})
    rule.severity = data["severity"]
    rule.latch = bool(data.get("latch", False))
    rule.open_case = bool(data.get("open_case", False))
    rule.case_category = data.get("case_category")
    rule.case_urgency = data.get("case_urgency", "normal")
    rule.case_route = bool(data.get("case_route", False))
    rule.enabled = bool(data.get("enabled", True))
    rule.updated_at = now
    session.flush()
    return rule


def create(session: Session, data: dict[str, Any], now: datetime) -> AlarmRule:
    if session.scalar(select(AlarmRule.id).where(AlarmRule.code == data.get("code"))):
        raise Conflict(f"规则 {data.get('code')} 已存在 / rule exists", field="code")
    return upsert(session, data, now)


def update(session: Session, rule: AlarmRule, changes: dict[str, Any], now: datetime) -> AlarmRule:
    data = {f: getattr(rule, f) for f in FIELDS} | {"code": rule.code}
    data.update({k: v for k, v in changes.items() if k in FIELDS})
    return upsert(session, data, now)


def get(session: Session, code: str) -> AlarmRule:
    rule = session.scalar(select(AlarmRule).where(AlarmRule.code == code))
    if rule is None:
        raise NotFound(f"规则 {code} 不存在 / rule not found", field="code")
    return rule


def list_rules(session: Session) -> list[AlarmRule]:
    return list(session.scalars(select(AlarmRule).order_by(AlarmRule.code)))


def load(session: Session, rules: Sequence[dict[str, Any]], now: datetime) -> int:
    """Upsert every rule of a YAML document; any invalid rule stops the load with its index."""
    for i, data in enumerate(rules):
        if not isinstance(data, dict):
            raise InvalidInput(f"rules[{i}]: 须为对象 / must be a mapping", field=f"rules.{i}")
        upsert(session, data, now, prefix=f"rules.{i}.")
    return len(rules)


def parse_yaml(text: str) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"YAML 无法解析 / not valid YAML: {exc}", field="rules") from None
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        raise InvalidInput("YAML 须有 rules 列表 / a top-level 'rules' list", field="rules")
    return rules


def default_rules() -> list[dict[str, Any]]:
    text = resources.files("cityops.alarms").joinpath("data/rules.yaml").read_text(encoding="utf-8")
    return parse_yaml(text)
