"""GeoReport v2 documents, with the specification's field names (http://wiki.open311.org/GeoReport_v2).

Date-times are strings already rendered in the district's zone with a numeric offset
(``2026-07-15T09:30:00+08:00``), so JSON and XML show exactly the same text."""

from __future__ import annotations

from pydantic import BaseModel


class Service(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str  # realtime | batch | blackbox
    keywords: str  # comma separated
    group: str


class AttributeValue(BaseModel):
    key: str
    name: str


class Attribute(BaseModel):
    variable: bool
    code: str
    datatype: str  # string | number | datetime | text | singlevaluelist | multivaluelist
    required: bool
    datatype_description: str | None
    order: int
    description: str
    values: list[AttributeValue]


class ServiceDefinition(BaseModel):
    service_code: str
    attributes: list[Attribute]


class ServiceRequest(BaseModel):
    service_request_id: str
    status: str  # open | closed
    status_notes: str | None
    service_name: str
    service_code: str
    description: str
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: str
    updated_datetime: str | None
    expected_datetime: str | None
    address: str | None
    lat: float | None
    long: float | None
    media_url: str | None


class PostedRequest(BaseModel):
    service_request_id: str | None
    token: str | None
    service_notice: str | None
    account_id: str | None


class TokenRecord(BaseModel):
    service_request_id: str | None
    token: str


class GeoReportError(BaseModel):
    code: int
    description: str
