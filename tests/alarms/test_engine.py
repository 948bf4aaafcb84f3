"""Rules evaluated on ingest: threshold with hysteresis and minimum duration, rate of change,
no data (worker), composite; one open alarm per (rule, source); state survives restarts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops.alarms import jobs, rules
from cityops.alarms.models import Alarm, AlarmEvent, RuleState
from cityops.telemetry.directory import Directory
from cityops.telemetry.ingest import ingest
from tests.telemetry.conftest import NOW, Kit, ms

LATER = NOW + timedelta(days=1)  # "now" for ingestion: every test reading is in the past


def rule(session: Session, **data: Any) -> Any:
    base = {"name": "测试规则", "severity": "major", "scope": "device_type"}
    return rules.upsert(session, base | data, NOW)


def gnss_rise(session: Session, value: float, **params: Any) -> Any:
    """A rate rule on the GNSS stations: a rise of more than ``value`` mm within an hour."""
    return rule(
        session,
        code="fast",
        kind="rate",
        scope_value="gnss",
        metric="disp_mm",
        params={"op": "above", "value": value, "window_s": 3600, **params},
    )


def feed(session: Session, device: str, metric: str, points: list[tuple[float, float]]) -> Any:
    batch = [{"device": device, "metric": metric, "ts": ms(t), "value": v} for t, v in points]
    return ingest(session, batch, LATER)


def alarms(session: Session) -> list[Alarm]:
    return list(session.scalars(select(Alarm).order_by(Alarm.id)))


def actions(session: Session, alarm: Alarm) -> list[str]:
    return list(
        session.scalars(
            select(AlarmEvent.action).where(AlarmEvent.alarm_id == alarm.id).order_by(AlarmEvent.id)
        )
    )


def test_threshold_with_hysteresis(session: Session, kit: Kit) -> None:
    rule(
        session,
        code="p-low",
        kind="threshold",
        scope_value="hydrant",
        metric="pressure_mpa",
        params={"op": "below", "value": 0.10, "clear": 0.14},
    )
    h = kit.codes["hydrant"]
    feed(session, h, "pressure_mpa", [(0, 0.30), (1, 0.09)])
    [alarm] = alarms(session)
    assert (alarm.condition, alarm.count, alarm.severity) == ("active", 1, "major")
    assert alarm.source == f"device:{h}" and alarm.region_code == kit.grid.code
    # 0.12 is back above the limit but inside the band: still active.
    feed(session, h, "pressure_mpa", [(2, 0.12), (3, 0.08)])
    assert alarm.condition == "active" and alarm.count == 1
    feed(session, h, "pressure_mpa", [(4, 0.15)])
    assert alarm.condition == "cleared" and alarm.closed_at is None  # not yet acknowledged
    feed(session, h, "pressure_mpa", [(5, 0.05)])
    assert (alarm.condition, alarm.count) == ("active", 2)  # the same open alarm, counted
    assert actions(session, alarm) == ["raised", "cleared", "reraised"]
    assert len(alarms(session)) == 1


def test_minimum_duration(session: Session, kit: Kit) -> None:
    rule(
        session,
        code="pm",
        kind="threshold",
        scope_value="gnss",
        metric="disp_mm",
        params={"op": "above", "value": 50, "duration_s": 600},
    )
    g = kit.codes["gnss"]
    feed(session, g, "disp_mm", [(0, 60), (5, 61), (6, 40), (7, 60), (12, 62)])
    assert alarms(session) == []  # never 10 minutes in a row
    feed(session, g, "disp_mm", [(17, 63)])
    [alarm] = alarms(session)
    assert alarm.value == 63


def test_rate_of_change_over_a_window(session: Session, kit: Kit) -> None:
    gnss_rise(session, 10, clear=5)
    g = kit.codes["gnss"]
    # 1 mm/h creep: no alarm; then 12 mm within the hour.
    feed(session, g, "disp_mm", [(i * 60, 100 + i) for i in range(5)])
    assert alarms(session) == []
    feed(session, g, "disp_mm", [(270, 104.5), (300, 116.0)])
    [alarm] = alarms(session)
    assert alarm.value == pytest.approx(12.0)  # against the oldest reading inside the hour
    feed(session, g, "disp_mm", [(420, 117), (480, 118)])
    assert alarm.condition == "cleared"


def test_late_readings_do_not_rewind_a_rule(session: Session, kit: Kit) -> None:
    rule(
        session,
        code="hi",
        kind="threshold",
        scope_value="gnss",
        metric="disp_mm",
        params={"op": "above", "value": 50},
    )
    g = kit.codes["gnss"]
    feed(session, g, "disp_mm", [(10, 10)])
    feed(session, g, "disp_mm", [(5, 99)])  # late: stored, not evaluated
    assert alarms(session) == []
    feed(session, g, "disp_mm", [(11, 99)])
    assert len(alarms(session)) == 1


def test_replayed_batches_and_a_restart_never_repeat_an_alarm(session: Session, kit: Kit) -> None:
    rule(
        session,
        code="hi",
        kind="threshold",
        scope_value="gnss",
        metric="disp_mm",
        params={"op": "above", "value": 50},
    )
    g = kit.codes["gnss"]
    batch = [{"device": g, "metric": "disp_mm", "ts": ms(t), "value": 60 + t} for t in range(3)]
    ingest(session, batch, LATER)
    # A fresh process (its own device cache) receives the same messages again, then new ones.
    ingest(session, batch, LATER, directory=Directory())
    ingest(
        session,
        [*batch[:1], {"device": g, "metric": "disp_mm", "ts": ms(3), "value": 70}],
        LATER,
        directory=Directory(),
    )
    [alarm] = alarms(session)
    assert alarm.count == 1 and actions(session, alarm) == ["raised"]


def test_no_data_raised_by_the_worker_and_cleared_by_data(session: Session, kit: Kit) -> None:
    rule(session, code="silent", kind="no_data", scope_value="gnss", params={"after_s": 3600})
    g = kit.codes["gnss"]
    feed(session, g, "disp_mm", [(0, 1.0)])
    factory = sessionmaker(
        bind=session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    assert jobs.no_data(factory, LATER + timedelta(minutes=30)) == 0
    assert jobs.no_data(factory, LATER + timedelta(hours=2)) == 1
    assert jobs.no_data(factory, LATER + timedelta(hours=3)) == 0  # already in alarm
    [alarm] = alarms(session)
    assert alarm.source == f"device:{g}" and alarm.condition == "active"
    ingest(
        session,
        [{"device": g, "metric": "disp_mm", "ts": ms(60), "value": 1.1}],
        LATER + timedelta(hours=3),
    )
    session.refresh(alarm)
    assert alarm.condition == "cleared"
    assert session.scalar(select(func.count()).select_from(RuleState)) == 0


def test_composite_on_a_site(session: Session, kit: Kit) -> None:
    rule(
        session,
        code="both",
        kind="composite",
        scope="site",
        scope_value="T-SITE",
        params={
            "by": "site",
            "conditions": [
                {"metric": "rain_mm", "op": "above", "value": 20},
                {"metric": "crack_mm", "op": "above", "value": 15},
            ],
        },
    )
    feed(session, kit.codes["rain"], "rain_mm", [(0, 25)])
    assert alarms(session) == []  # one condition is not enough
    feed(session, kit.codes["crack"], "crack_mm", [(1, 16)])
    [alarm] = alarms(session)
    assert alarm.source == "site:T-SITE" and alarm.lat is not None
    assert "T-RAIN-1" in alarm.message and "T-CRACK-1" in alarm.message
    feed(session, kit.codes["rain"], "rain_mm", [(2, 0)])
    assert alarm.condition == "cleared"


def test_disabled_and_out_of_scope_rules_stay_quiet(session: Session, kit: Kit) -> None:
    rule(
        session,
        code="off",
        kind="threshold",
        scope_value="gnss",
        metric="disp_mm",
        params={"op": "above", "value": 1},
        enabled=False,
    )
    rule(
        session,
        code="other",
        kind="threshold",
        scope="device",
        scope_value="T-GNSS-9",
        metric="disp_mm",
        params={"op": "above", "value": 1},
    )
    feed(session, kit.codes["gnss"], "disp_mm", [(0, 50)])
    assert alarms(session) == []


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "threshold", "metric": "x", "params": {"op": "up", "value": 1}}, "params.op"),
        ({"kind": "threshold", "metric": "x", "params": {"value": "1"}}, "params.value"),
        ({"kind": "threshold", "metric": "x", "params": {"value": 5, "clear": 6}}, "params.clear"),
        ({"kind": "rate", "metric": "x", "params": {"value": 1}}, "params.window_s"),
        ({"kind": "no_data", "params": {"after_s": 1}}, "params.after_s"),
        ({"kind": "composite", "params": {"conditions": []}}, "params.conditions"),
        ({"kind": "magic", "params": {}}, "kind"),
        ({"kind": "threshold", "params": {"value": 1}}, "metric"),
    ],
)
def test_bad_rules_name_the_field(session: Session, data: dict[str, Any], field: str) -> None:
    from cityops.errors import InvalidInput

    with pytest.raises(InvalidInput) as err:
        rule(session, code="bad", scope_value="gnss", **data)
    assert err.value.field == field


def test_rate_look_back_reads_only_the_new_readings_on_sqlite(session: Session, kit: Kit) -> None:
    """SQLite's planner may answer the rate rule's statements — a DISTINCT over the new
    readings — by scanning the whole readings index in device order instead of the batch's
    rowid range: every batch then costs time in proportion to everything ever stored (it
    did: 5,000-reading batches slowed by a third at 300,000 stored, 1,000-reading ones 2.3×).
    Each statement that reads the new readings must search them by rowid."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite's query planner")
    from sqlalchemy import event

    gnss_rise(session, 1)
    g = kit.codes["gnss"]
    feed(session, g, "disp_mm", [(i, 100.0) for i in range(20)])
    seen: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cur: Any, statement: str, params: Any, *_a: Any) -> None:
        if "AS s" in statement:
            seen.append((statement, params))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", keep)
    try:
        feed(session, g, "disp_mm", [(20, 100.5), (21, 102.0)])  # a rise: both statements
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert len(alarms(session)) == 1
    assert len(seen) >= 2  # the rise test and the window starts
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    for statement, params in seen:
        plan = [row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", params)]
        outer = [step for step in plan if " s " in f"{step} "]
        assert outer and all("INTEGER PRIMARY KEY (rowid>?)" in step for step in outer), plan


def test_a_rate_rule_sees_only_the_new_readings_of_a_batch_with_repeats(
    session: Session, kit: Kit
) -> None:
    """With a rate rule the batch is staged before it is stored (PostgreSQL): a batch that
    repeats readings stored before still stores and evaluates just the new ones."""
    gnss_rise(session, 10)
    g = kit.codes["gnss"]
    first = [(i * 10, 100.0 + i) for i in range(5)]
    assert feed(session, g, "disp_mm", first).stored == 5
    again = feed(session, g, "disp_mm", [*first, (60, 104.5), (70, 115.0)])
    assert (again.stored, again.duplicates) == (2, 5)
    [alarm] = alarms(session)
    assert alarm.value == pytest.approx(14.0)  # 115 against 101: the oldest in its hour
    assert feed(session, g, "disp_mm", [(60, 104.5), (70, 115.0)]).stored == 0
    assert alarm.count == 1
