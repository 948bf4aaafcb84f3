"""The workbench's alarm rules page: every rule in words — what it watches, when it raises and
clears, how severe, whether it opens a case — with its open alarms in the person's area. Rules
are changed through the API or YAML (``cityops rules load``); this page is for reading them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cityops.alarms import conditions, queries, rules
from cityops.alarms.models import AlarmRule, Kind
from cityops.auth.permissions import Permission as P
from cityops.deps import DbSession
from cityops.errors import InvalidInput
from cityops.web.i18n import pick_language
from cityops.web.views import MaybePrincipal
from cityops.workbench import shell

router = APIRouter(include_in_schema=False)


def span(seconds: float, lang: str) -> str:
    """A duration as people say it: 90 s, 15 min, 2 h, 3 d."""
    zh = lang == "zh"
    for size, one_zh, one_en in ((86400, "天", "d"), (3600, "小时", "h"), (60, "分钟", "min")):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {one_zh}" if zh else f"{n} {one_en}"
    return f"{seconds:g} 秒" if zh else f"{seconds:g} s"


def _test(metric: str, t: conditions.Threshold, lang: str) -> str:
    above = t.op == "above"
    text = f"{metric} {'>' if above else '<'} {t.value:g}"
    if t.clear != t.value:
        back = f"{'≤' if above else '≥'} {t.clear:g}"
        text += f"，回到 {back} 解除" if lang == "zh" else f", clears at {back}"
    if t.duration_ms:
        lasting = span(t.duration_ms / 1000, lang)
        text += f"，持续 {lasting}" if lang == "zh" else f" for {lasting}"
    return text


def describe(rule: AlarmRule, lang: str) -> str:
    """The rule's condition in words (its parameters were checked when it was saved)."""
    params, metric, zh = rule.params, str(rule.metric or ""), lang == "zh"
    try:
        match rule.kind:
            case Kind.threshold:
                return _test(metric, conditions.threshold(params), lang)
            case Kind.rate:
                window = span(conditions.window_ms(params) / 1000, lang)
                change = _test(f"Δ{metric}", conditions.threshold(params), lang)
                return f"{window}内变化：{change}" if zh else f"change within {window}: {change}"
            case Kind.no_data:
                after = span(conditions.after_ms(params) / 1000, lang)
                return f"超过 {after} 没有数据" if zh else f"no data for {after}"
            case Kind.composite:
                parts, fresh = conditions.composite(params)
                joined = "；".join(_test(p.metric, p.test, lang) for p in parts)
                group = params.get("by", "site") == "group"
                within_ = span(fresh / 1000, lang)
                if zh:
                    return f"同一{'设备组' if group else '站点'} {within_}内同时：{joined}"
                where = "group" if group else "site"
                return f"all at once on one {where} within {within_}: {joined}"
    except InvalidInput:
        pass
    return str(params)


@router.get("/workbench/alarm-rules")
def rule_list(request: Request, principal: MaybePrincipal, session: DbSession) -> Response:
    admitted = shell.admit(request, session, principal, P.alarms_read)
    if isinstance(admitted, Response):
        return admitted
    lang = pick_language(request)
    counts = queries.open_by_rule(session, admitted)
    rows: list[dict[str, Any]] = [
        {"rule": r, "condition": describe(r, lang), "open": counts.get(r.id, 0)}
        for r in rules.list_rules(session)
    ]
    return shell.page(
        request, session, admitted, "wb/alarm_rules.html", active="alarm-list", rows=rows
    )
