"""Open311 GeoReport v2 over the event center.

Services are the active leaf categories of the catalogue; service requests are cases. Reads are
public, so a request shows only what any citizen may see: no reporter, no internal notes, phone
and ID numbers in descriptions masked, personal matters (disputes, wages, welfare …) without
their text or place, and only cases from public channels (not sensor alarms, video analytics or
departments' internal reports). Writing needs an API key with the ``open311:post`` scope, sent
as the ``api_key`` form field as the specification says.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, select
from sqlalchemy.orm import Session

from cityops.auth import apikeys, audit
from cityops.auth.permissions import Permission
from cityops.auth.principal import Principal
from cityops.catalog import service as catalog
from cityops.catalog.models import Category, CategoryKind, Clock, Urgency
from cityops.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from cityops.events import intake
from cityops.events.models import Case, Source, State
from cityops.geo.models import Level, Region
from cityops.open311.schemas import (
    Attribute,
    AttributeValue,
    PostedRequest,
    Service,
    ServiceDefinition,
    ServiceRequest,
    TokenRecord,
)
from cityops.org.models import Unit
from cityops.privacy import mask_mobile

# Channels whose cases the public feed shows: what people (and field staff) reported about
# public space. Sensor alarms, video analytics and departments' own reports stay internal.
PUBLIC_SOURCES = frozenset(
    {Source.citizen, Source.hotline, Source.open311, Source.grid_worker, Source.inspector}
)
CLOSED_STATES = frozenset({State.closed, State.rejected, State.merged, State.voided})
# Categories about people's own affairs — neighbour disputes, noise and dogs next door, unpaid
# wages, property-management and consumer disputes, welfare, vagrants: the public feed shows their
# status, never their text or place. (Food safety SH06 and school surroundings SH09 stay public.)
PERSONAL_CATEGORIES = frozenset({"SH01", "SH02", "SH03", "SH04", "SH05", "SH07", "SH08", "JM10"})
WITHHELD = "（涉及个人事项，内容不公开）/ personal matter: details are not public"

WINDOW = timedelta(days=90)
MAX_IDS = 100
MAX_PAGE_SIZE = 1000
TOKEN_PREFIX = "open311:"  # case idempotency key = prefix + token
MEDIA_MARK = "附图 / media: "  # the last description line carrying a posted media_url
COMPONENT_MARK = "部件编号 / component ID: "

STATUS_NOTES = {
    State.reported: "已收到，等待受理 / received, awaiting registration",
    State.registered: "已立案，等待派遣 / registered, awaiting dispatch",
    State.dispatched: "已派遣，等待责任单位签收 / dispatched to the responsible unit",
    State.handling: "责任单位正在处置 / being handled",
    State.handled: "已处置，等待核查 / handled, awaiting verification",
    State.parked: "暂缓办理（挂账）/ on hold",
    State.closed: "已核查结案 / resolved and verified",
    State.rejected: "不予立案 / not accepted as a case",
    State.merged: "已与反映同一问题的诉求合并办理 / merged with a request about the same problem",
    State.voided: "已作废 / withdrawn",
}
CLOCK_WORDS = {
    Clock.working.value: ("工作小时", "working hours"),
    Clock.natural.value: ("小时", "hours"),
}

_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3})-(\d{3,4})(\d{4})(?!\d)")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,56}$")
_ATTRIBUTE = re.compile(r"^attribute\[([^\]\[]{1,40})\](\[\])?$")
_URL = re.compile(r"^https?://[^\s<>\"']{1,490}$")
_CJK = re.compile(r"[\u3400-\u9fff]")
# Control characters (NUL above all: PostgreSQL text cannot hold it) are refused at the door.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text(value: str, field: str) -> None:
    if _CONTROL.search(value):
        raise InvalidInput("含有控制字符 / control characters are not allowed", field=field)


def zone() -> ZoneInfo:
    return ZoneInfo(catalog.calendar().zone)


def w3c(moment: datetime | None) -> str | None:
    """A date-time in the district's zone with a numeric offset (never ``Z``)."""
    if moment is None:
        return None
    return moment.astimezone(zone()).isoformat(timespec="seconds")


def check_jurisdiction(session: Session, jurisdiction_id: str | None) -> None:
    """Optional by the specification; when given it must be our district's division code."""
    if not jurisdiction_id:
        return
    code = session.scalar(select(Region.code).where(Region.level == Level.district.value))
    if jurisdiction_id != code:
        raise NotFound(
            f"未知辖区 {jurisdiction_id[:20]!r} / jurisdiction_id not found (use {code})",
            field="jurisdiction_id",
        )


# --- services ----------------------------------------------------------------------------------


def _hours(value: float) -> str:
    return f"{value:g}"


def _limits(category: Category, urgency: str | None = None) -> str:
    zh, en = CLOCK_WORDS.get(category.clock, CLOCK_WORDS[Clock.working.value])
    if urgency in (Urgency.urgent.value, Urgency.normal.value):
        hours = _hours(category.limit_hours(urgency))
        return f"派遣后 {hours} {zh}内处置 / to be handled within {hours} {en} of dispatch"
    urgent, normal = _hours(category.limit_urgent_h), _hours(category.limit_normal_h)
    return (
        f"派遣后紧急 {urgent}、一般 {normal} {zh}内处置 / "
        f"handled within {urgent} (urgent) or {normal} (normal) {en} of dispatch"
    )


def _service(category: Category, group: str) -> Service:
    return Service(
        service_code=category.code,
        service_name=category.name,
        description=f"{group} · {category.name}：{_limits(category)}",
        metadata=True,
        type="realtime",
        keywords=",".join(category.keywords or []),
        group=group,
    )


def list_services(session: Session, jurisdiction_id: str | None = None) -> list[Service]:
    check_jurisdiction(session, jurisdiction_id)
    rows = catalog.tree(session)
    groups = {c.id: c.name for c in rows if c.parent_id is None}
    return [
        _service(c, groups.get(c.parent_id, ""))
        for c in rows
        if c.parent_id is not None and c.active
    ]


def _attributes(category: Category) -> list[Attribute]:
    attributes = [
        Attribute(
            variable=True,
            code="urgency",
            datatype="singlevaluelist",
            required=False,
            datatype_description=None,
            order=1,
            description="紧急程度：危及人身安全、交通或财产时选“紧急” / urgency: "
            "choose urgent when people, traffic or property are in danger",
            values=[
                AttributeValue(key=Urgency.normal.value, name="一般 / normal"),
                AttributeValue(key=Urgency.urgent.value, name="紧急 / urgent"),
            ],
        ),
        Attribute(
            variable=True,
            code="location_detail",
            datatype="string",
            required=False,
            datatype_description="最多 100 字 / up to 100 characters",
            order=2,
            description="位置补充（楼栋、路口、参照物）/ location details (building, junction, "
            "landmark)",
            values=[],
        ),
    ]
    if category.kind == CategoryKind.component.value:
        attributes.append(
            Attribute(
                variable=True,
                code="component_id",
                datatype="string",
                required=False,
                datatype_description="部件标识牌上的编码，最多 40 个字母、数字或连字符 / "
                "up to 40 letters, digits or hyphens",
                order=3,
                description="部件编号（见井盖、灯杆等上的标识牌，如有）/ component ID from its "
                "plate (manhole cover, lamp post …), if any",
                values=[],
            )
        )
    return attributes


def _service_category(session: Session, code: str) -> Category:
    try:
        return catalog.leaf(session, code, field="service_code")
    except InvalidInput:
        raise NotFound(
            f"服务 {code[:20]!r} 不存在 / service_code not found", field="service_code"
        ) from None


def service_definition(
    session: Session, service_code: str, jurisdiction_id: str | None = None
) -> ServiceDefinition:
    check_jurisdiction(session, jurisdiction_id)
    category = _service_category(session, service_code)
    return ServiceDefinition(service_code=category.code, attributes=_attributes(category))


# --- posting a request -------------------------------------------------------------------------


def authenticate(session: Session, api_key: str | None, now: datetime, ip: str) -> Principal:
    """The API key of the form: missing → 401, unknown, revoked or expired → 403 (as the
    specification says), lacking the ``open311:post`` scope → 403."""
    if not api_key:
        raise Unauthenticated(
            "缺少 api_key / api_key is required to create a service request",
            field="api_key",
            headers={"WWW-Authenticate": 'ApiKey realm="open311"'},
        )
    principal = apikeys.key_principal(session, api_key, now, ip)
    if principal is None:
        raise Forbidden("api_key 无效或已失效 / invalid api_key", field="api_key")
    if not principal.can(Permission.open311_post):
        raise Forbidden(
            "该 api_key 无权提交诉求 / this api_key lacks the open311:post scope",
            field="api_key",
        )
    audit.set_actor(session, audit.Actor("api_key", str(principal.id), principal.name, ip))
    return principal


class Form:
    """The posted fields (form and query string), each given at most once."""

    def __init__(self, fields: Mapping[str, Sequence[str]]) -> None:
        self.fields = fields

    def get(self, name: str, max_length: int = 200) -> str | None:
        values = [v.strip() for v in self.fields.get(name, ()) if v.strip()]
        for value in values:
            check_text(value, name)
        if len(values) > 1:
            raise InvalidInput(f"{name} 只能提供一次 / give {name} once", field=name)
        if not values:
            return None
        if len(values[0]) > max_length:
            raise InvalidInput(
                f"{name} 过长（最多 {max_length} 字符）/ {name}: at most {max_length} characters",
                field=name,
            )
        return values[0]

    def coordinate(self, name: str, limit: float) -> float | None:
        raw = self.get(name, 40)
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or abs(value) > limit:
            raise InvalidInput(
                f"{name} 须为 WGS-84 十进制度数 / {name}: decimal degrees (WGS-84)", field=name
            )
        return value

    def attributes(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for key in self.fields:
            match = _ATTRIBUTE.match(key)
            if match is None:
                continue
            code = match.group(1)
            value = self.get(key)
            if code in found:
                raise InvalidInput(f"属性 {code} 重复 / attribute {code} given twice", field=key)
            if value is not None:
                found[code] = value
        return found


@dataclass
class _Attrs:
    urgency: str = Urgency.normal.value
    location_detail: str | None = None
    component_id: str | None = None


def _read_attributes(category: Category, given: dict[str, str]) -> _Attrs:
    known = {a.code: a for a in _attributes(category)}
    out = _Attrs()
    for code, value in given.items():
        field = f"attribute[{code}]"
        spec = known.get(code)
        if spec is None:
            raise InvalidInput(
                f"服务 {category.code} 没有属性 {code[:40]!r}; known: {', '.join(known)}",
                field=field,
            )
        if spec.values and value not in {v.key for v in spec.values}:
            allowed = ", ".join(v.key for v in spec.values)
            raise InvalidInput(f"{code} 须为 {allowed} / {code}: one of {allowed}", field=field)
        if code == "urgency":
            out.urgency = value
        elif code == "location_detail":
            if len(value) > 100:
                raise InvalidInput("位置补充最多 100 字 / at most 100 characters", field=field)
            out.location_detail = value
        elif code == "component_id":
            if not re.fullmatch(r"[A-Za-z0-9-]{1,40}", value):
                raise InvalidInput(
                    "部件编号只能含字母、数字和连字符 / letters, digits and hyphens only",
                    field=field,
                )
            out.component_id = value
    return out


def _reporter_name(first: str | None, last: str | None) -> str | None:
    if _CJK.search((first or "") + (last or "")):
        return f"{last or ''}{first or ''}" or None  # 姓 + 名
    return " ".join(p for p in (first, last) if p) or None


def create_request(
    session: Session, principal: Principal, fields: Mapping[str, Sequence[str]], now: datetime
) -> PostedRequest:
    """POST requests: one case through the ordinary intake, source ``open311``."""
    form = Form(fields)
    code = form.get("service_code", 20)
    if code is None:
        raise InvalidInput("缺少 service_code / service_code is required", field="service_code")
    category = catalog.leaf(session, code, field="service_code")
    lat, lon = form.coordinate("lat", 90), form.coordinate("long", 180)
    address = form.get("address_string", 200)
    if (lat is None) != (lon is None):
        missing = "long" if lon is None else "lat"
        raise InvalidInput("须同时提供 lat 和 long / give both lat and long", field=missing)
    if lat is None:
        if address or form.get("address_id", 100):
            raise InvalidInput(
                "暂不能按地址定位，请提供 lat 和 long（WGS-84）/ address_string and address_id "
                "cannot be located here: send lat and long (WGS-84) as well",
                field="lat",
            )
        raise InvalidInput(
            "请提供位置 lat 和 long / a location is required: lat and long", field="lat"
        )
    attrs = _read_attributes(category, form.attributes())
    description = form.get("description", 4000) or category.name
    if attrs.component_id:
        description += f"\n{COMPONENT_MARK}{attrs.component_id}"
    media_url = form.get("media_url", 500)
    if media_url:
        if not _URL.match(media_url):
            raise InvalidInput(
                "media_url 须为 http(s) 网址 / media_url: an http(s) URL", field="media_url"
            )
        description += f"\n{MEDIA_MARK}{media_url}"
    phone = form.get("phone", 20)
    for name in ("email", "device_id", "account_id"):
        form.get(name, 254)  # accepted per the specification, checked for size, not kept
    token = secrets.token_urlsafe(18)
    case, _created = intake.report(
        session,
        principal,
        intake.Report(
            description=description,
            source=Source.open311.value,
            category=category.code,
            urgency=attrs.urgency,
            lat=lat,
            lon=lon,
            address="；".join(p for p in (address, attrs.location_detail) if p),
            reporter_name=_reporter_name(form.get("first_name", 50), form.get("last_name", 50)),
            reporter_phone=phone,
            idempotency_key=f"{TOKEN_PREFIX}{token}",
        ),
        now,
    )
    return PostedRequest(
        service_request_id=case.code,
        token=token,
        service_notice=_limits(category, case.urgency),
        account_id=None,
    )


def submit(
    session: Session, fields: Mapping[str, Sequence[str]], now: datetime, ip: str
) -> PostedRequest:
    """POST requests as it arrives: jurisdiction, then the api_key, then the case."""
    form = Form(fields)
    check_jurisdiction(session, form.get("jurisdiction_id", 40))
    audit.set_actor(session, audit.Actor("anonymous", ip=ip))
    principal = authenticate(session, form.get("api_key", 200), now, ip)
    return create_request(session, principal, fields, now)


# --- reading requests --------------------------------------------------------------------------


def _public() -> Select[Case, Category]:
    return (
        select(Case, Category)
        .join(Category, Case.category_id == Category.id)
        .where(
            Case.code.is_not(None),
            Case.source.in_(sorted(s.value for s in PUBLIC_SOURCES)),
        )
    )


def status_of(state: str) -> str:
    return "closed" if state in CLOSED_STATES else "open"


def public_text(text: str) -> str:
    """Phone and ID-card numbers masked: descriptions are public in GeoReport."""
    text = _ID_CARD.sub(lambda m: m.group(0)[:6] + "*" * 8 + m.group(0)[-4:], text)
    text = _MOBILE.sub(lambda m: mask_mobile(m.group(0)) or "", text)
    return _LANDLINE.sub(lambda m: f"{m.group(1)}-{'*' * len(m.group(2))}{m.group(3)}", text)


def _split_media(description: str) -> tuple[str, str | None]:
    head, sep, last = description.rpartition("\n")
    url = last[len(MEDIA_MARK) :]
    if sep and last.startswith(MEDIA_MARK) and _URL.match(url):
        return head, url
    return description, None


def _request_out(case: Case, category: Category, units: dict[int, str]) -> ServiceRequest:
    personal = category.code in PERSONAL_CATEGORIES
    description, media_url = _split_media(case.description)
    return ServiceRequest(
        service_request_id=case.code or "",
        status=status_of(case.state),
        status_notes=STATUS_NOTES.get(State(case.state)),
        service_name=category.name,
        service_code=category.code,
        description=WITHHELD if personal else public_text(description),
        agency_responsible=units.get(case.current_unit_id) if case.current_unit_id else None,
        service_notice=_limits(category, case.urgency),
        requested_datetime=w3c(case.created_at) or "",
        updated_datetime=w3c(case.updated_at),
        expected_datetime=w3c(case.deadline_at),
        address=None if personal else (public_text(case.address) or None),
        lat=None if personal else case.lat,
        long=None if personal else case.lon,
        media_url=None if personal else media_url,
    )


def _render(session: Session, rows: Sequence[tuple[Case, Category]]) -> list[ServiceRequest]:
    unit_ids = {case.current_unit_id for case, _ in rows if case.current_unit_id}
    units = (
        {i: n for i, n in session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(unit_ids)))}
        if unit_ids
        else {}
    )
    return [_request_out(case, category, units) for case, category in rows]


def _split(raw: str | None) -> list[str]:
    """A comma-delimited parameter; absent or empty means no filter."""
    return [p.strip() for p in (raw or "").split(",") if p.strip()]


def parse_datetime(raw: str, name: str, *, end: bool = False) -> datetime:
    """W3C/ISO 8601: ``2026-07-15T09:30:00+08:00``, ``…Z`` or a date. A time without an offset
    and a bare date are the district's local time; a bare end date includes that whole day."""
    value = raw.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time.max if end else time.min, tzinfo=zone())
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{name} 须为 ISO 8601 日期时间，如 2026-07-15T09:30:00+08:00 / "
            f"{name}: an ISO 8601 date-time such as 2026-07-15T09:30:00+08:00",
            field=name,
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone())


@dataclass(frozen=True)
class RequestQuery:
    service_request_id: str | None = None
    service_code: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    status: str | None = None
    page_size: int = MAX_PAGE_SIZE
    page: int = 1
    jurisdiction_id: str | None = None


def _window(q: RequestQuery, now: datetime) -> tuple[datetime, datetime]:
    start = parse_datetime(q.start_date, "start_date") if q.start_date else None
    end = parse_datetime(q.end_date, "end_date", end=True) if q.end_date else None
    try:
        if start is None and end is None:
            end = now
        if start is None:
            assert end is not None
            start = end - WINDOW
        if end is None:
            end = start + WINDOW
        start, end = start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(
            "日期超出范围 / date out of range", field="end_date" if q.end_date else "start_date"
        ) from None
    if start > end:
        raise InvalidInput(
            "start_date 晚于 end_date / start_date is after end_date", field="start_date"
        )
    if end - start > WINDOW:
        raise InvalidInput(
            "查询跨度不能超过 90 天 / start_date and end_date may not span more than 90 days",
            field="start_date,end_date",
        )
    return start, end


def _status_filter(raw: str | None) -> ColumnElement[bool] | None:
    wanted = {s.lower() for s in _split(raw)}
    if wanted - {"open", "closed"}:
        raise InvalidInput("status 只能为 open 或 closed / status: open, closed", field="status")
    if wanted == {"open"}:
        return Case.state.not_in(sorted(s.value for s in CLOSED_STATES))
    if wanted == {"closed"}:
        return Case.state.in_(sorted(s.value for s in CLOSED_STATES))
    return None


def find_requests(session: Session, q: RequestQuery, now: datetime) -> list[ServiceRequest]:
    """GET requests. ``service_request_id`` overrides every other filter, as specified."""
    check_jurisdiction(session, q.jurisdiction_id)
    ids = _split(q.service_request_id)
    if ids:
        if len(ids) > MAX_IDS:
            raise InvalidInput(
                f"一次最多查询 {MAX_IDS} 个 / at most {MAX_IDS} ids", field="service_request_id"
            )
        found = {
            case.code: (case, cat)
            for case, cat in session.execute(_public().where(Case.code.in_(ids)))
        }
        return _render(session, [found[i] for i in dict.fromkeys(ids) if i in found])
    start, end = _window(q, now)
    query = _public().where(Case.created_at >= start, Case.created_at <= end)
    codes = _split(q.service_code)
    if codes:
        known = set(
            session.scalars(
                select(Category.code).where(
                    Category.code.in_(codes), Category.parent_id.is_not(None)
                )
            )
        )
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise InvalidInput(
                f"服务 {unknown[0][:20]!r} 不存在 / unknown service_code", field="service_code"
            )
        query = query.where(Category.code.in_(codes))
    status = _status_filter(q.status)
    if status is not None:
        query = query.where(status)
    query = (
        query.order_by(Case.created_at.desc(), Case.id.desc())
        .limit(q.page_size)
        .offset((q.page - 1) * q.page_size)
    )
    return _render(session, [(case, cat) for case, cat in session.execute(query)])


def get_request(
    session: Session, service_request_id: str, jurisdiction_id: str | None = None
) -> list[ServiceRequest]:
    """GET requests/{id}: a list of one, as specified."""
    check_jurisdiction(session, jurisdiction_id)
    row = session.execute(_public().where(Case.code == service_request_id)).first()
    if row is None:
        raise NotFound(
            f"诉求 {service_request_id[:20]!r} 不存在 / service_request_id not found",
            field="service_request_id",
        )
    return _render(session, [(row[0], row[1])])


def token_lookup(
    session: Session, token: str, jurisdiction_id: str | None = None
) -> list[TokenRecord]:
    """GET tokens/{token}: the request a token stands for."""
    check_jurisdiction(session, jurisdiction_id)
    row = None
    if _TOKEN.match(token):
        row = session.scalar(
            select(Case.code).where(
                and_(
                    Case.idempotency_key == f"{TOKEN_PREFIX}{token}",
                    Case.source == Source.open311.value,
                )
            )
        )
    if row is None:
        raise NotFound(f"凭据 {token[:20]!r} 不存在 / token not found", field="token")
    return [TokenRecord(service_request_id=row, token=token)]
