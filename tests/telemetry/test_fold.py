"""Folding stored readings into the roll-ups and latest values (telemetry/fold.py): exact —
equal to aggregating the readings directly, late and out-of-order ones included — idempotent,
and exactly once when two folders run at the same moment."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from cityops.db import session_factory, transaction, utcnow
from cityops.telemetry import fold
from cityops.telemetry.directory import Directory
from cityops.telemetry.ingest import ingest
from cityops.telemetry.models import Device, FoldState, Latest, Rollup1h, Rollup1m
from tests.telemetry.conftest import NOW, NOW_MS, Kit, bare_devices

MINUTE, HOUR = 60_000, 3_600_000
LATER = NOW + timedelta(hours=6)  # every test reading is in the past


def random_readings(kit: Kit, seed: int, n: int = 400) -> list[dict[str, Any]]:
    """Readings of three series over three hours, shuffled (late and out of order), some of
    them sent twice (a retry carries the same value)."""
    rng = random.Random(seed)
    series = [(kit.codes["gnss"], "disp_mm"), (kit.codes["gnss"], "disp_v_mm")]
    series.append((kit.codes["crack"], "crack_mm"))
    out = []
    for i in range(n):
        code, metric = series[i % len(series)]
        ts = NOW_MS + rng.randrange(0, 3 * HOUR, 250)
        out.append({"device": code, "metric": metric, "ts": ts, "value": rng.uniform(0, 20)})
    unique = {(r["device"], r["metric"], r["ts"]): r for r in reversed(out)}  # first one wins
    out = list(unique.values())
    out += rng.sample(out, 40)
    rng.shuffle(out)
    return out


def expected(items: list[dict[str, Any]], width: int) -> dict[tuple[str, str, int], tuple]:
    """(device, metric, bucket) → (n, min, max, sum, last_ts, last_value), aggregated here."""
    stored = {(r["device"], r["metric"], r["ts"]): r["value"] for r in reversed(items)}
    groups: dict[tuple[str, str, int], list[tuple[int, float]]] = {}
    for (code, metric, ts), value in stored.items():
        groups.setdefault((code, metric, ts - ts % width), []).append((ts, value))
    return {
        key: (
            len(points),
            min(v for _t, v in points),
            max(v for _t, v in points),
            sum(v for _t, v in points),
            *max(points),
        )
        for key, points in groups.items()
    }


def rollups(session: Session, model: Any) -> dict[tuple[str, str, int], tuple]:
    rows = session.execute(
        select(Device.code, model.metric, model.bucket, model.n, model.vmin, model.vmax)
        .add_columns(model.vsum, model.last_ts, model.last_value)
        .join(Device, Device.id == model.device_id)
    )
    return {(code, m, b): (n, lo, hi, s, lt, lv) for code, m, b, n, lo, hi, s, lt, lv in rows}


def assert_exact(session: Session, items: list[dict[str, Any]]) -> None:
    for model, width in ((Rollup1m, MINUTE), (Rollup1h, HOUR)):
        got, want = rollups(session, model), expected(items, width)
        assert got.keys() == want.keys()
        for key, (n, lo, hi, total, last_ts, last_value) in want.items():
            g = got[key]
            assert (g[0], g[1], g[2], g[4], g[5]) == (n, lo, hi, last_ts, last_value), key
            assert g[3] == pytest.approx(total)
    newest: dict[tuple[str, str], tuple[int, float]] = {}
    for (code, metric, _b), (*_rest, last_ts, last_value) in expected(items, HOUR).items():
        newest[(code, metric)] = max(newest.get((code, metric), (0, 0.0)), (last_ts, last_value))
    latest = session.execute(
        select(Device.code, Latest.metric, Latest.ts, Latest.value).join(
            Device, Device.id == Latest.device_id
        )
    )
    assert {(c, m): (t, v) for c, m, t, v in latest} == newest


def test_folding_later_equals_aggregating_directly(session: Session, kit: Kit) -> None:
    items = random_readings(kit, seed=1)
    rng = random.Random(2)
    i = 0
    while i < len(items):
        size = rng.randint(1, 60)
        result = ingest(session, items[i : i + size], LATER, fold=False)
        assert not result.rejected
        i += size
        if rng.random() < 0.4:  # a fold now and then, sometimes of only part of what waits
            fold.run(session, LATER, limit=rng.choice([None, 7, 50]))
    while fold.run(session, LATER, limit=25):
        pass
    assert fold.pending(session) == 0
    assert_exact(session, items)
    # Idempotent: nothing left to fold, nothing changes; a replayed batch adds nothing.
    before = rollups(session, Rollup1h)
    assert fold.run(session, LATER) == 0
    again = ingest(session, items[:100], LATER, fold=False, directory=Directory())
    assert (again.stored, fold.run(session, LATER)) == (0, 0)
    assert rollups(session, Rollup1h) == before


def test_latest_value_with_out_of_order_readings(session: Session, kit: Kit) -> None:
    g = kit.codes["gnss"]

    def send(minute: float, value: float, received: int) -> None:
        reading = {"device": g, "metric": "disp_mm", "ts": NOW_MS + int(minute * MINUTE)}
        moment = LATER + timedelta(seconds=received)
        ingest(session, [reading | {"value": value}], moment, fold=False)

    send(10, 10.0, received=0)
    send(5, 5.0, received=1)  # late, in the same fold
    fold.run(session, LATER)
    send(2, 2.0, received=2)  # late, in a fold of its own
    fold.run(session, LATER)
    latest = session.scalars(select(Latest)).one()
    assert (latest.ts, latest.value) == (NOW_MS + 10 * MINUTE, 10.0)
    assert latest.received_at == LATER + timedelta(seconds=2)  # heard from last then
    send(11, 11.0, received=3)
    send(12, 12.0, received=4)
    fold.run(session, LATER)
    session.refresh(latest)
    assert (latest.ts, latest.value) == (NOW_MS + 12 * MINUTE, 12.0)
    assert latest.received_at == LATER + timedelta(seconds=4)
    hour = session.scalars(select(Rollup1h)).one()
    assert (hour.n, hour.vmin, hour.vmax, hour.last_value) == (5, 2.0, 12.0, 12.0)


# --- two folders at the same moment (committed data: a database of its own) ---------------


def test_two_folders_at_once_never_double_count(
    own_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = session_factory(own_db, writer=True)
    with transaction(factory) as s:
        bare_devices(s, {"F-GNSS": "gnss", "F-CRACK": "crack"})
    kit = Kit(grid=None, codes={"gnss": "F-GNSS", "crack": "F-CRACK"})  # type: ignore[arg-type]
    items = random_readings(kit, seed=3, n=900)
    directory = Directory()
    for i in range(0, len(items), 50):
        with transaction(factory) as s:
            ingest(s, items[i : i + 50], LATER, fold=False, directory=directory)
    monkeypatch.setattr(fold, "CHUNK", 40)  # many small folds, interleaved
    start = threading.Barrier(2)
    counts: list[int] = []

    def folder() -> None:
        start.wait()
        counts.append(fold.catch_up(factory, LATER, wait=True))

    threads = [threading.Thread(target=folder) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stored = len({(r["device"], r["metric"], r["ts"]) for r in items})
    assert sum(counts) == stored  # every reading folded once, by one folder or the other
    with Session(own_db) as s:
        assert fold.pending(s) == 0
        assert_exact(s, items)


def test_a_folder_paces_itself_and_leaves_rounds_to_others(own_db: Engine) -> None:
    """Under heavy ingestion a fold grows long: the folder then rests several fold-lengths
    (never more than ten intervals); and a round another process folded less than an
    interval ago is left out."""
    folder = fold.Folder(session_factory(own_db, writer=True), interval_s=1.0)
    assert folder.rest_s() == 1.0
    folder.last_s = 0.6
    assert folder.rest_s() == pytest.approx(fold.PACE * 0.6)
    folder.last_s = 30.0
    assert folder.rest_s() == 10.0
    for ago, left_out in ((0.2, True), (5.0, False)):
        with transaction(folder.factory) as s:
            s.execute(
                update(FoldState)
                .where(FoldState.stream == fold.STREAM)
                .values(folded_at=utcnow() - timedelta(seconds=ago))
            )
        assert folder._folded_lately() is left_out


def test_a_folder_cuts_its_rest_short_when_storing_pauses(own_db: Engine) -> None:
    """After a long fold the folder rests long (here the cap, ten intervals: 2 s); once its
    process has stored readings and then nothing for QUIET_S — a burst has ended — it folds
    after an interval instead, so the roll-ups catch up soon after the burst."""
    if own_db.dialect.name != "sqlite":
        pytest.skip("the same on both engines: no database involved")
    folder = fold.Folder(session_factory(own_db, writer=True), interval_s=0.2)
    folder.last_s = 30.0
    assert folder.rest_s() == pytest.approx(2.0)

    def rest() -> float:
        started = time.monotonic()
        assert folder._rest() is False
        return time.monotonic() - started

    assert rest() >= 1.9  # nothing stored: the whole rest
    folder.stored()
    assert rest() < 1.0  # stored, then quiet: an interval and the quiet time, not the rest
    assert rest() >= 1.9  # nothing stored since that fold


def with_device(engine: Engine, code: str) -> sessionmaker[Session]:
    """A GNSS station ``code`` registered and everything before it folded; a writer factory."""
    factory = session_factory(engine, writer=True)
    with transaction(factory) as s:
        bare_devices(s, {code: "gnss"})
    fold.catch_up(factory, LATER, wait=True)
    return factory


def one_series(code: str, n: int) -> list[dict[str, Any]]:
    """``n`` readings of one GNSS series a second apart, valued 0 … n - 1."""
    return [
        {"device": code, "metric": "disp_mm", "ts": NOW_MS + i * 1000, "value": float(i)}
        for i in range(n)
    ]


def assert_folded_once(engine: Engine, code: str, n: int) -> None:
    """Nothing left to fold, a waiting fold finds nothing more, and the series' hour holds
    each of its ``n`` readings once."""
    assert fold.catch_up(session_factory(engine, writer=True), LATER, wait=True) == 0
    with Session(engine) as s:
        assert fold.pending(s) == 0
        hour = s.scalars(
            select(Rollup1h)
            .join(Device, Device.id == Rollup1h.device_id)
            .where(Device.code == code)
        ).one()
        assert (hour.n, hour.vmin, hour.vmax) == (n, 0.0, n - 1.0)


def test_a_long_writing_transaction_elsewhere_delays_folds_but_not_a_waiting_one(
    own_db: Engine,
) -> None:
    """PostgreSQL folds the readings of transactions below the oldest one still writing — in
    the whole cluster. While such a transaction runs, a background fold leaves newer readings
    for later; a folder that waits (shutdown, direct callers) takes them too, and no later
    fold takes them again."""
    if own_db.dialect.name != "postgresql":
        pytest.skip("SQLite folds by rowid: one writer at a time")
    factory = with_device(own_db, "L-GNSS")
    items = one_series("L-GNSS", 30)
    with own_db.connect() as long_running:
        long_running.exec_driver_sql("SELECT txid_current()")  # writing: it holds an id
        with transaction(factory) as s:
            ingest(s, items, LATER, fold=False, directory=Directory())
        assert fold.catch_up(factory, LATER) == 0  # the horizon is held back
        assert fold.catch_up(factory, LATER, wait=True) == 30
        long_running.rollback()
    assert_folded_once(own_db, "L-GNSS", 30)  # and never twice


def test_a_background_folder_passes_a_horizon_held_back_too_long(own_db: Engine) -> None:
    """A transaction left open somewhere holds the horizon: a background folder waits for it
    for ``held_back_s``, then folds past it, exactly once."""
    if own_db.dialect.name != "postgresql":
        pytest.skip("SQLite folds by rowid: one writer at a time")
    factory = with_device(own_db, "H-GNSS")
    items = one_series("H-GNSS", 20)
    folder = fold.Folder(factory, interval_s=0.01)
    with transaction(factory) as s:  # the module's database: an earlier test folded in it,
        s.execute(  # perhaps more than held_back_s ago on a busy machine
            update(FoldState).where(FoldState.stream == fold.STREAM).values(folded_at=utcnow())
        )
    with own_db.connect() as long_running:
        held = long_running.exec_driver_sql("SELECT txid_current()").scalar_one()  # writing
        with transaction(factory) as s:
            ingest(s, items[:10], LATER, fold=False, directory=Directory())
        assert folder.round() == 0  # held back, not for long yet
        # The horizon is the oldest transaction in the whole cluster: in round one it may
        # still have been another test's, finished since — so the horizon stands at this
        # one's only now, and moved there a while ago.
        with transaction(factory) as s:
            s.execute(
                update(FoldState)
                .where(FoldState.stream == fold.STREAM)
                .values(
                    position=held,
                    folded_at=utcnow() - timedelta(seconds=folder.held_back_s + 1),
                )
            )
        assert folder.round() == 10
        with transaction(factory) as s:
            ingest(s, items[10:], LATER, fold=False, directory=Directory())
        assert folder.round() == 10  # still held: each round passes it again
        long_running.rollback()
    assert_folded_once(own_db, "H-GNSS", 20)  # and never twice


def test_one_fold_taking_readings_by_two_routes_counts_each_minute_once(own_db: Engine) -> None:
    """A waiting fold takes finished transactions' readings below the horizon and those above
    it in one go: readings of the same minute by both routes make one 1-minute roll-up."""
    if own_db.dialect.name != "postgresql":
        pytest.skip("SQLite folds by rowid: one route")
    factory = with_device(own_db, "M-GNSS")
    items = one_series("M-GNSS", 30)  # one minute
    directory = Directory()
    with transaction(factory) as s:
        ingest(s, items[:15], LATER, fold=False, directory=directory)  # below the horizon
    with own_db.connect() as long_running:
        long_running.exec_driver_sql("SELECT txid_current()")
        with transaction(factory) as s:
            ingest(s, items[15:], LATER, fold=False, directory=directory)  # above it
        assert fold.catch_up(factory, LATER, wait=True) == 30
        long_running.rollback()
    with Session(own_db) as s:
        minute = s.scalars(
            select(Rollup1m)
            .join(Device, Device.id == Rollup1m.device_id)
            .where(Device.code == "M-GNSS")
        ).one()
        assert (minute.n, minute.vmin, minute.vmax, minute.last_value) == (30, 0.0, 29.0, 29.0)
