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
    # Machine scopes (API keys):
    telemetry_write = "telemetry:write"
    open311_post = "open311:post"


P = Permission
_STAFF_READ = frozenset({P.regions_read, P.org_read, P.people_read})

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission) - {P.telemetry_write, P.open311_post},
    Role.district_commander: _STAFF_READ | {P.pii_unmask},
    Role.leader: _STAFF_READ,
    Role.shift_leader: _STAFF_READ | {P.pii_unmask},
    Role.intake_operator: _STAFF_READ | {P.pii_unmask},
    Role.dispatcher: _STAFF_READ | {P.pii_unmask},
    Role.handler: _STAFF_READ,
    Role.inspector: _STAFF_READ,
    Role.grid_worker: _STAFF_READ,
    Role.citizen: frozenset({P.regions_read}),
    Role.device: frozenset(),  # a machine's permissions are its API key's scopes
}

# What an API key may be granted.
MACHINE_SCOPES = frozenset({P.telemetry_write, P.open311_post, P.regions_read})


def permissions_of(roles: frozenset[str] | set[str]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(Role(role), frozenset())
    return frozenset(granted)
