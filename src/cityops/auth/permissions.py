"""The permission matrix: every role's permissions in one place.

Routes ask for a permission, never for a role, so changing who may do what is an edit here.
Region scope (which part of the district a person may see) is separate and enforced in queries.
"""

from __future__ import annotations

from enum import StrEnum

from cityops.org.roles import Role


class Permission(StrEnum):
    regions_read = "regions:read"
    regions_write = "regions:write"
    org_read = "org:read"
    people_read = "people:read"
    pii_unmask = "pii:unmask"  # see names and phone numbers in full (each time audited)
    users_manage = "users:manage"
    api_keys_manage = "api_keys:manage"
    audit_read = "audit:read"
    catalog_manage = "catalog:manage"
    # Cases (event center).
    cases_read = "cases:read"  # within region scope; handlers: their unit's; citizens: their own
    cases_report = "cases:report"
    cases_register = "cases:register"  # 立案, 不予立案, 合并
    cases_dispatch = "cases:dispatch"  # 派遣, 下派, 自处理, 上报, 延期审批, 协办
    cases_handle = "cases:handle"  # 签收, 回退, 处置反馈, 申请延期
    cases_verify = "cases:verify"  # 核查
    cases_supervise = "cases:supervise"  # 挂账, 作废, 督办
    evaluation_read = "evaluation:read"
    # Sensors and alarms.
    devices_read = "devices:read"  # devices, their status and readings
    devices_manage = "devices:manage"  # register devices, types, groups; issue device keys
    alarms_read = "alarms:read"
    alarms_manage = "alarms:manage"  # acknowledge, clear, comment, assign, shelve
    rules_manage = "rules:manage"
    # landslide early warning
    warnings_read = "warnings:read"  # risk points, analytics, warnings, evacuation boards
    warnings_propose = "warnings:propose"
    warnings_decide = "warnings:decide"  # confirm, reject, issue, update, lift (in scope)
    risk_points_manage = "risk_points:manage"  # risk points, zones, households, shelters
    evacuation_update = "evacuation:update"  # household statuses from the field
    # Machine scopes (API keys):
    telemetry_write = "telemetry:write"
    open311_post = "open311:post"


P = Permission
_STAFF_READ = frozenset({P.regions_read, P.org_read, P.people_read, P.cases_read})
_SENSORS = frozenset({P.devices_read, P.alarms_read, P.warnings_read})
_OPERATOR = _SENSORS | {P.alarms_manage}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission) - {P.telemetry_write, P.open311_post},
    Role.district_commander: _STAFF_READ
    | _OPERATOR
    | {
        P.pii_unmask,
        P.cases_report,
        P.cases_dispatch,
        P.cases_supervise,
        P.evaluation_read,
        P.warnings_propose,
        P.warnings_decide,
        P.risk_points_manage,
        P.evacuation_update,
    },
    Role.leader: _STAFF_READ | _SENSORS | {P.evaluation_read},
    Role.shift_leader: _STAFF_READ
    | _OPERATOR
    | {
        P.pii_unmask,
        P.cases_report,
        P.cases_register,
        P.cases_dispatch,
        P.cases_verify,
        P.cases_supervise,
        P.evaluation_read,
        P.warnings_propose,
        P.evacuation_update,
    },
    Role.intake_operator: _STAFF_READ
    | _OPERATOR
    | {P.pii_unmask, P.cases_report, P.cases_register},
    Role.dispatcher: _STAFF_READ
    | _OPERATOR
    | {
        P.pii_unmask,
        P.cases_report,
        P.cases_register,
        P.cases_dispatch,
        P.cases_verify,
        P.warnings_propose,
        P.evacuation_update,
    },
    Role.handler: _STAFF_READ | _OPERATOR | {P.cases_report, P.cases_handle},
    Role.inspector: _STAFF_READ | _SENSORS | {P.cases_report, P.cases_verify, P.warnings_propose},
    Role.grid_worker: _STAFF_READ
    | _SENSORS
    | {P.cases_report, P.cases_verify, P.warnings_propose, P.evacuation_update},
    Role.citizen: frozenset({P.regions_read, P.cases_report, P.cases_read}),
    Role.device: frozenset(),  # a machine's permissions are its API key's scopes
}

# What an API key may be granted.
MACHINE_SCOPES = frozenset({P.telemetry_write, P.open311_post, P.regions_read})


def permissions_of(roles: frozenset[str] | set[str]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(Role(role), frozenset())
    return frozenset(granted)
