"""Typed decoding of a batch (``telemetry.wire``): the same verdict on every reading as the
general parser gives, and a body that does not fit the typed records left to that parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.telemetry import wire
from cityops.telemetry.directory import DIRECTORY
from cityops.telemetry.ingest import Policy
from cityops.telemetry.models import Reading
from cityops.telemetry.validate import check
from tests.telemetry.conftest import NOW, Kit, ms


def batch(kit: Kit) -> list[Any]:
    """Readings whose fields all have the types the records declare — most of them bad."""
    g, rain, hyd = kit.codes["gnss"], kit.codes["rain"], kit.codes["hydrant"]
    logger = {"battery_v": 3.6, "rssi_dbm": -71, "firmware": "RTU-3.2.7", "tags": [1, {"a": 2}]}
    return [
        {"device": g, "metric": "disp_mm", "ts": ms(0), "value": 1.5, **logger},  # 0 good
        {"device": g, "metric": "disp_mm", "ts": ms(1), "value": 2},  # 1 an integer: good
        {"device": "NOPE", "metric": "disp_mm", "ts": ms(0), "value": 1.0},  # 2 unknown
        {"device": g, "metric": "disp_mm", "ts": ms(2), "value": 99_999.0},  # 3 out of range
        {"device": g, "metric": "disp_mm", "ts": ms(24 * 60), "value": 1.0},  # 4 future
        {"device": g, "metric": "disp_mm", "ts": ms(-24 * 60 * 800), "value": 1.0},  # 5 old
        {"device": g, "metric": "temperature", "ts": ms(3), "value": 1.0},  # 6 no such metric
        {"device": g, "metric": "disp_mm", "value": 1.0},  # 7 no timestamp
        {"device": g, "metric": "disp_mm", "ts": "2026-07-15 08:00:00", "value": 1.0},  # 8
        {"device": g, "metric": "disp_mm", "ts": ms(4), "value": None},  # 9 value null
        {"device": g, "metric": "disp_mm", "ts": ms(4)},  # 10 no value
        {"device": g, "metric": None, "ts": ms(4), "value": 1.0},  # 11 metric null
        {"device": g, "ts": ms(4), "value": 1.0},  # 12 no metric
        {"metric": "disp_mm", "ts": ms(4), "value": 1.0},  # 13 no device
        {"device": "", "metric": "disp_mm", "ts": ms(4), "value": 1.0},  # 14 empty device
        {"device": rain, "ts": ms(0), "values": {"rain_mm": 2.5, "wind": 3}},  # 15 one of two
        {"device": rain, "ts": ms(5), "values": {"rain_mm": 0.5}, "metric": "x"},  # 16 good
        {"device": hyd, "metric": "pressure_mpa", "ts": ms(1), "value": 0.3},  # 17 good
        {"device": g, "metric": "disp_mm", "ts": ms(-6) // 1000, "value": 1.0},  # 18 seconds
        {"device": g, "metric": "disp_mm", "ts": "2026-07-15T08:07:00+08:00", "value": 1.0},
        {"device": g, "metric": "disp_mm", "ts": 10**30, "value": 1.0},  # 20 beyond any clock
        {"device": g, "values": None, "metric": "disp_mm", "ts": ms(-8), "value": 3.0},  # 21
        {"device": rain, "ts": ms(0), "values": {}},  # 22 nothing in it
    ]


def verdicts(items: list[Any], kit: Kit, session: Session) -> tuple[Any, Any]:
    by_code, _by_id = DIRECTORY.known(session)
    rows, rejected = check(items, by_code, Policy().limits(NOW))
    return rows, [r.as_dict() for r in rejected]


def test_typed_records_get_the_general_parsers_verdicts(session: Session, kit: Kit) -> None:
    body = json.dumps(batch(kit)).encode()
    typed = wire.decode(body)
    assert typed is not None and all(type(item) is wire.Wire for item in typed)
    rows, rejected = verdicts(typed, kit, session)
    assert (rows, rejected) == verdicts(json.loads(body), kit, session)
    assert len(rows) == 8 and len(rejected) == 16  # both ways: a real mix
    assert {(r["index"], r["reason"]) for r in rejected} >= {
        (2, "unknown_device"),
        (11, "unknown_metric"),  # "metric": null is not the same as no metric …
        (12, "missing"),  # … which is
        (20, "bad_timestamp"),
        (22, "missing"),
    }


def test_a_reading_as_sent(kit: Kit) -> None:
    one = wire.decode(b'{"device": "D", "ts": 5, "metric": null, "extra": [1, 2]}')
    assert one is not None and one[0].as_dict() == {"device": "D", "ts": 5, "metric": None}


@pytest.mark.parametrize(
    "body",
    [
        b'[{"device": "D", "ts": 1, "value": "12"}]',  # a string
        b'[{"device": "D", "ts": 1, "value": true}]',  # a boolean
        b'[{"device": "D", "ts": 1, "value": NaN}]',  # not JSON, but what devices send
        b'[{"device": "D", "ts": 1.5, "value": 1}]',  # a fractional timestamp
        b'[{"device": "D", "ts": 1, "value": 1' + b"0" * 400 + b"}]",  # beyond a float
        b'[{"device": "D", "ts": 1, "values": [1, 2]}]',
        b'[{"device": 7, "ts": 1, "value": 1}]',
        b'["not an object"]',
        b'"hello"',
        b"{not json",
    ],
)
def test_what_does_not_fit_is_left_to_the_general_parser(body: bytes) -> None:
    assert wire.decode(body) is None


def test_a_batch_with_one_odd_reading_is_kept_but_for_it(
    anon: TestClient, credentials: dict[str, str], session: Session, kit: Kit
) -> None:
    """Through HTTP: the batch no longer fits the typed records, and still each reading is
    judged on its own."""
    from tests.telemetry.test_api import now_ms

    g = kit.codes["gnss"]
    good = [
        {"device": g, "metric": "disp_mm", "ts": now_ms(-3 + i / 10), "value": float(i)}
        for i in range(5)
    ]
    odd = {"device": g, "metric": "disp_mm", "ts": now_ms(-1), "value": "7"}
    key = {"X-API-Key": credentials["(API key)"]}
    out = anon.post("/api/v1/telemetry", json=[*good[:2], odd, *good[2:]], headers=key).json()
    assert (out["stored"], out["rejected_count"]) == (5, 1)
    assert (out["rejected"][0]["index"], out["rejected"][0]["reason"]) == (2, "wrong_type")
    stored = session.scalars(select(Reading.value).order_by(Reading.ts)).all()
    assert stored == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_an_mqtt_reading_without_a_device_is_its_topics() -> None:
    from cityops.telemetry.mqtt import Inbound, parse
    from cityops.telemetry.validate import device_code

    payload = b'[{"ts": 1, "metric": "m", "value": 1}, {"device": "D", "ts": 1, "value": 2}]'
    message = Inbound(1, 1, "cityops/GW-1/telemetry", payload, dup=False, generation=0)
    parsed = parse(message, "cityops/+/telemetry", max_payload=1 << 20, max_items=2)
    assert parsed.problem is None and all(type(item) is wire.Wire for item in parsed.items)
    assert [device_code(item) for item in parsed.items] == ["GW-1", "D"]
    assert parse(message, "cityops/+/telemetry", 1 << 20, max_items=1).problem == "too_many"
