"""Writers storing readings of the same devices at the same moment (PostgreSQL: several HTTP
processes or MQTT workers; SQLite: threads taking turns at its write lock) evaluate each
device's readings one writer at a time, in the order they commit: a device's rule ends where
its newest reading puts it, whoever stored which reading when."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from cityops.alarms import rules
from cityops.alarms.models import Alarm, RuleState
from cityops.db import session_factory, transaction
from cityops.telemetry.directory import Directory
from cityops.telemetry.ingest import ingest
from cityops.telemetry.models import Device
from tests.telemetry.conftest import NOW, NOW_MS, bare_devices

CODES = ("RACE-1", "RACE-2", "RACE-3")
LATER = NOW + timedelta(hours=1)  # every reading is in the past
WRITERS = 4


def test_racing_writers_leave_each_rule_where_the_newest_reading_puts_it(own_db: Engine) -> None:
    factory = session_factory(own_db, writer=True)
    with transaction(factory) as s:
        bare_devices(s, dict.fromkeys(CODES, "gnss"))
        rule = rules.upsert(
            s,
            {
                "code": "race-high",
                "name": "位移超限",
                "kind": "threshold",
                "scope": "device_type",
                "scope_value": "gnss",
                "metric": "disp_mm",
                "params": {"op": "above", "value": 10.0},
                "severity": "major",
            },
            NOW,
        )
        rule_id = rule.id
    # Distinct instants in random order, values either side of the limit: batches of several
    # devices whose readings arrive early and late, split among the writers.
    rng = random.Random(11)
    stamps = list(range(900))
    rng.shuffle(stamps)
    readings = [
        {
            "device": CODES[i % len(CODES)],
            "metric": "disp_mm",
            "ts": NOW_MS + t * 1000,
            "value": rng.choice([5.0, 15.0]),
        }
        for i, t in enumerate(stamps)
    ]
    batches = [readings[i : i + 9] for i in range(0, len(readings), 9)]
    directory = Directory()
    start = threading.Barrier(WRITERS)
    given_up: list[list[dict[str, object]]] = []

    def writer(k: int) -> None:
        start.wait()
        for batch in batches[k::WRITERS]:
            for _attempt in range(20):
                try:
                    with transaction(factory) as s:
                        result = ingest(s, batch, LATER, fold=False, directory=directory)
                    assert not result.rejected
                    break
                except OperationalError:  # a deadlock broken or a lock timeout: again
                    time.sleep(0.01)
            else:
                given_up.append(batch)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not given_up
    with Session(own_db) as s:
        for code in CODES:
            newest = max((r for r in readings if r["device"] == code), key=lambda r: r["ts"])
            active = newest["value"] > 10.0
            conditions = s.scalars(
                select(Alarm.condition)
                .join(Device, Device.id == Alarm.device_id)
                .where(Device.code == code, Alarm.rule_id == rule_id)
            ).all()
            assert conditions.count("active") == (1 if active else 0), (code, conditions)
            state = s.scalar(
                select(RuleState.active).where(
                    RuleState.rule_id == rule_id, RuleState.source == f"device:{code}"
                )
            )
            assert bool(state) == active, code
