"""Ingestion: each bad reading rejected with its reason while the good ones are kept; stored
exactly once; roll-ups and latest values exact, also for late and out-of-order readings."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops.db import make_engine
from cityops.telemetry import service as tsvc
from cityops.telemetry.directory import DIRECTORY, Directory, preload
from cityops.telemetry.ingest import Policy, ingest
from cityops.telemetry.models import Device, Latest, Reading, Rollup1h, Rollup1m
from tests.telemetry.conftest import NOW, Kit, ms


def r(device: str, metric: str, t: int, value: object) -> dict[str, object]:
    return {"device": device, "metric": metric, "ts": t, "value": value}


def test_a_batch_is_stored_with_rollups_and_latest(session: Session, kit: Kit) -> None:
    g = kit.codes["gnss"]
    values = [1.0, 4.0, 2.0, 8.0]
    batch = [r(g, "disp_mm", ms(i * 0.25), v) for i, v in enumerate(values)]
    result = ingest(session, batch, NOW)
    assert (result.stored, result.duplicates, result.rejected) == (4, 0, [])

    minute = session.scalars(select(Rollup1m)).one()
    assert (minute.n, minute.vmin, minute.vmax, minute.vsum) == (4, 1.0, 8.0, 15.0)
    assert (minute.last_ts, minute.last_value) == (ms(0.75), 8.0)
    hour = session.scalars(select(Rollup1h)).one()
    assert (hour.n, hour.vmax, hour.last_value) == (4, 8.0, 8.0)
    latest = session.scalars(select(Latest)).one()
    assert (latest.ts, latest.value) == (ms(0.75), 8.0)


def test_a_retried_batch_changes_nothing(session: Session, kit: Kit) -> None:
    g = kit.codes["gnss"]
    batch = [r(g, "disp_mm", ms(i), float(i)) for i in range(5)]
    ingest(session, batch, NOW)
    again = ingest(session, [*batch, batch[0]], NOW)
    assert (again.stored, again.duplicates) == (0, 6)
    assert session.scalar(select(func.count()).select_from(Reading)) == 5
    total = session.scalar(select(func.sum(Rollup1m.n)))
    assert total == 5
    assert session.scalar(select(func.sum(Rollup1h.n))) == 5


def test_each_invalid_reading_is_rejected_with_its_reason(session: Session, kit: Kit) -> None:
    g, rain = kit.codes["gnss"], kit.codes["rain"]
    batch = [
        r(g, "disp_mm", ms(0), 1.5),  # 0 good
        r("NOPE", "disp_mm", ms(0), 1.0),  # 1 unknown device
        r(g, "disp_mm", ms(1), float("nan")),  # 2 NaN
        r(g, "disp_mm", ms(2), 99_999.0),  # 3 out of range
        r(g, "disp_mm", ms(24 * 60), 1.0),  # 4 a day ahead
        r(g, "disp_mm", ms(3), "12"),  # 5 a string
        r(g, "disp_mm", ms(4), True),  # 6 a boolean
        r(g, "temperature", ms(4.5), 1.0),  # 7 not a metric of GNSS
        "not an object",  # 8
        {"device": g, "metric": "disp_mm", "value": 1.0},  # 9 no timestamp
        r(g, "disp_mm", "2026-07-15 08:00:00", 1.0),  # 10 no UTC offset
        r(g, "disp_mm", ms(-24 * 60 * 800), 1.0),  # 11 older than retention
        {"device": rain, "ts": ms(0), "values": {"rain_mm": 2.5, "wind": 3}},  # 12 one of two
        r(rain, "rain_mm", ms(3), -1.0),  # 13 negative rain
        {"device": rain, "ts": ms(0), "values": {}},  # 14 no value at all
        {"device": [g], "metric": "disp_mm", "ts": ms(5), "value": 1.0},  # 15 not a code
        {"device": "", "metric": "disp_mm", "ts": ms(5), "value": 1.0},  # 16 an empty code
    ]
    result = ingest(session, batch, NOW)
    reasons = {(x.index, x.field, x.reason) for x in result.rejected}
    assert reasons == {
        (1, "device", "unknown_device"),
        (2, "value", "not_finite"),
        (3, "value", "out_of_range"),
        (4, "ts", "future_timestamp"),
        (5, "value", "wrong_type"),
        (6, "value", "wrong_type"),
        (7, "metric", "unknown_metric"),
        (8, "reading", "malformed"),
        (9, "ts", "missing"),
        (10, "ts", "bad_timestamp"),
        (11, "ts", "too_old"),
        (12, "values.wind", "unknown_metric"),
        (13, "value", "out_of_range"),
        (14, "values", "missing"),
        (15, "device", "bad_device"),
        (16, "device", "missing"),
    }
    assert result.stored == 2  # the good GNSS reading and the good half of item 12
    assert all(x.message for x in result.rejected)
    json.dumps(result.as_dict())  # the response body is plain JSON


def test_late_and_out_of_order_readings(session: Session, kit: Kit) -> None:
    g = kit.codes["gnss"]
    later = NOW + timedelta(hours=1)
    ingest(session, [r(g, "disp_mm", ms(10), 10.0)], later)
    late = ingest(session, [r(g, "disp_mm", ms(5), 5.0), r(g, "disp_mm", ms(1), 1.0)], later)
    assert late.stored == 2
    latest = session.scalars(select(Latest)).one()
    assert (latest.ts, latest.value) == (ms(10), 10.0)  # the newest stays newest
    hour = session.scalars(select(Rollup1h)).one()
    assert (hour.n, hour.vmin, hour.last_ts, hour.last_value) == (3, 1.0, ms(10), 10.0)


def test_key_restricted_to_a_group(session: Session, kit: Kit) -> None:
    from cityops.telemetry.ingest import restriction

    allowed = restriction({"group": "T-GW"})
    batch = [
        r(kit.codes["gnss"], "disp_mm", ms(0), 1.0),
        r(kit.codes["hydrant"], "pressure_mpa", ms(0), 0.3),
    ]
    result = ingest(session, batch, NOW, allowed=allowed)
    assert result.stored == 1
    assert [(x.index, x.reason) for x in result.rejected] == [(1, "forbidden_device")]


def test_seconds_and_iso_timestamps(session: Session, kit: Kit) -> None:
    g = kit.codes["gnss"]
    seconds = ms(1) // 1000
    iso = (NOW + timedelta(minutes=2)).astimezone().isoformat()
    result = ingest(session, [r(g, "disp_mm", seconds, 1.0), r(g, "disp_mm", iso, 2.0)], NOW)
    assert result.stored == 2
    stamps = set(session.scalars(select(Reading.ts)))
    assert stamps == {ms(1), ms(2)}


def test_series_downsamples_in_sql(session: Session, kit: Kit) -> None:
    g = kit.codes["gnss"]
    batch = [r(g, "disp_mm", ms(i), float(i)) for i in range(120)]  # two hours, one a minute
    ingest(session, batch, NOW + timedelta(hours=2))
    device = tsvc.get_device(session, g)
    start, end = ms(0), ms(120)
    for resolution in ("auto", "raw", "1m"):
        res, width, points = tsvc.series(
            session, device, "disp_mm", start, end, points=4, resolution=resolution
        )
        assert res == ("1m" if resolution == "auto" else resolution)  # the coarsest that fits
        assert width == 30 * 60_000
        assert [p.n for p in points] == [30, 30, 30, 30]
        assert [p.min for p in points] == [0, 30, 60, 90]
        assert [p.last for p in points] == [29, 59, 89, 119]
        assert points[0].avg == sum(range(30)) / 30
    res, _w, hourly = tsvc.series(session, device, "disp_mm", start, end, resolution="1h")
    assert res == "1h" and [p.n for p in hourly] == [60, 60]
    assert [p.last for p in hourly] == [59, 119]


def test_policy_limits_follow_settings() -> None:
    from cityops.config import Settings

    policy = Policy.from_settings(Settings(telemetry_future_tolerance_s=10))
    limits = policy.limits(NOW)
    assert limits.future_ms - limits.now_ms == 10_000


def test_numbers_too_large_for_a_float_are_rejected(session: Session, kit: Kit) -> None:
    g = kit.codes["gnss"]
    batch = [r(g, "disp_mm", ms(0), 10**400), r(g, "disp_mm", 10**400, 1.0)]
    result = ingest(session, batch, NOW)
    assert [(x.field, x.reason) for x in result.rejected] == [
        ("value", "not_finite"),
        ("ts", "bad_timestamp"),
    ]


def test_unbounded_metrics_still_refuse_infinity(session: Session, kit: Kit) -> None:
    tsvc.load_types(
        session,
        [{"code": "t-free", "name": "无量程", "metrics": [{"name": "x"}]}],
        NOW,
    )
    tsvc.create_device(
        session,
        tsvc.DeviceInput("T-FREE", "t-free", "无量程", kit.grid.center_lat, kit.grid.center_lon),
        NOW,
    )
    batch = [r("T-FREE", "x", ms(0), float("inf")), r("T-FREE", "x", ms(1), -1e300)]
    result = ingest(session, batch, NOW, directory=Directory())
    assert [(x.index, x.reason) for x in result.rejected] == [(0, "not_finite")]
    assert result.stored == 1


def test_a_process_loads_the_device_directory_before_its_first_batch(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``cityops serve`` and ``cityops ingest`` load the device directory at start-up and say
    how many devices it holds; a database out of reach is logged, and left to the first batch."""
    away = make_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'cityops.db'}")
    DIRECTORY.invalidate()
    with caplog.at_level(logging.WARNING, logger="cityops.telemetry"):
        assert preload(sessionmaker(bind=away)) is None
    assert "device directory not loaded at start-up" in caplog.text
    with Session(engine) as s:
        fleet = s.scalar(select(func.count()).select_from(Device))
    assert preload(sessionmaker(bind=engine)) == fleet
    with Session(away) as s:  # loaded: answered from the cache, no database needed
        assert len(DIRECTORY.known(s)[0]) == fleet
    away.dispose()
