"""The catalogue of roles and the scopes each one grants.

Tokens carry scopes, not roles, so services check one thing (`has_scope`); roles are
the names administrators hand out. Who may hand out which role is a separate list,
`ASSIGNABLE_ROLES`: the right to give a village its secretary is not the right to
read that village's sensitive records, so district IT, which cannot read them,
still appoints the secretary who can (ADR 14). Callers without roles (the platform's
services, apps) may grant a role only when they hold every scope of it.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.kit.errors import InvalidArgument

# Scopes of the platform's components (map, events, command, twin, empower) and of
# the people and care data kept for villages.
ALL_SCOPES: frozenset[str] = frozenset(
    {
        "map:read",
        "map:write",
        "map:read_sensitive",
        "events:read",
        "events:write",
        "events:configure",
        "events:handle",
        "events:manage",
        "command:read",
        "command:write",
        "command:dispatch",
        "twin:read",
        "twin:write",
        "twin:ingest",
        "empower:read",
        "people:read",
        "people:write",
        "people:read_sensitive",
        "care:read",
        "care:write",
        "audit:read",
        "audit:verify",
        "tenants:write",
        "users:write",
        "apps:write",
        # Fill once, report many; the points ledger; notices (empower's own work).
        "forms:write",
        "reports:read",
        "points:write",
        "notices:send",
        # The catalog and the datasets returned to villages.
        "catalog:read",
        "scenarios:install",
        "datasets:read",
        "datasets:publish",
        # Village credit: recording households' consents, and a consumer's (a bank
        # app's) reads of a score under one (ADR 37).
        "credit:consent",
        "credit:read",
    }
)

_READ = frozenset(
    {"map:read", "events:read", "command:read", "twin:read", "empower:read", "catalog:read"}
)
# Staff handle events and manage their lifecycle (reject, mark duplicate, reassign);
# who may take which move is services/events/domain/access.py.
_OPERATE = _READ | {"map:write", "events:write", "command:write", "twin:write", "twin:ingest"}
# Staff dispatch too: they transfer tasks; handlers take their own tasks' moves.
_DISPATCH = frozenset({"command:read", "command:dispatch"})
_OPERATE = _OPERATE | _DISPATCH
_OPERATE = _OPERATE | {"events:handle", "events:manage"}
_ADMINISTER = frozenset({"users:write", "apps:write"})
# Staff who run a village's work: its forms and reports, its points and notices.
_EMPOWER = frozenset(
    {"forms:write", "reports:read", "points:write", "notices:send", "credit:consent"}
)

ROLES: dict[str, frozenset[str]] = {
    # Runs the district's platform: the tree, accounts, apps and every component,
    # without sensitive personal data.
    # Reads the audit log of its subtree: the administrative actions it answers for.
    "district_admin": _OPERATE
    | _ADMINISTER
    | {"tenants:write", "events:configure", "people:read", "people:write", "audit:read"}
    | {"care:read", "care:write", "reports:read"}
    | {"datasets:publish", "datasets:read", "scenarios:install"}
    # Registers the banks' apps that read scores: nobody grants a scope they do not
    # hold, and a score is only ever read by an app a household consented to.
    | {"credit:read"},
    # Reads everything a district sees and the audit trail; changes nothing.
    "district_auditor": _READ
    | {"audit:read", "audit:verify", "people:read", "reports:read", "datasets:read"},
    # A town (street) office: dispatches and configures for its villages.
    "town_officer": _OPERATE
    | _ADMINISTER
    | _EMPOWER
    | {"events:configure", "people:read", "datasets:read", "scenarios:install"},
    # Runs a village: its residents' records (sensitive ones included), its staff
    # accounts and its apps.
    "village_secretary": _OPERATE
    | _ADMINISTER
    | _EMPOWER
    | {"events:configure", "people:read", "people:write", "people:read_sensitive"}
    | {"care:read", "care:write", "map:read_sensitive"}
    | {"datasets:read", "scenarios:install"},
    # Patrols a grid cell: reports and handles events, sees the map and residents.
    "grid_worker": frozenset(
        {"events:read", "events:write", "events:handle", "map:read", "people:read"}
        | {"forms:write"}
    )
    | _DISPATCH,
    # Looks after elderly people living alone and patients followed up: reads unmasked
    # only the people they are assigned to (a person's `carer`), everyone else masked;
    # records each visit on the village's forms.
    "carer": frozenset({"people:read", "care:read", "care:write", "forms:write"}) | _DISPATCH,
    "volunteer": frozenset({"events:read", "events:write", "map:read"}) | _DISPATCH,
    # A resident reports and follows events; which events they see (their own, and
    # the originals their reports repeat) is decided by the events service.
    "resident": frozenset({"events:read", "events:write"}),
}


_FIELD_ROLES = frozenset({"grid_worker", "carer", "volunteer", "resident"})

# Which roles a holder of a role may give to (or take from, or manage the accounts
# of) users in its subtree, whatever scopes those roles carry. Nobody appoints a peer
# of their own rank: another district administrator comes from the platform.
ASSIGNABLE_ROLES: dict[str, frozenset[str]] = {
    "district_admin": _FIELD_ROLES | {"district_auditor", "town_officer", "village_secretary"},
    "district_auditor": frozenset(),
    "town_officer": frozenset({"grid_worker", "volunteer", "resident"}),
    "village_secretary": _FIELD_ROLES,
    "grid_worker": frozenset(),
    "carer": frozenset(),
    "volunteer": frozenset(),
    "resident": frozenset(),
}


def may_assign(role: str, caller_roles: Iterable[str], caller_scopes: frozenset[str]) -> bool:
    """Whether a caller may grant `role`: by one of its roles' lists, or, for a caller
    without roles (a service, an app), by holding every scope the role grants."""
    held = tuple(caller_roles)
    if held:
        return any(role in ASSIGNABLE_ROLES.get(r, frozenset()) for r in held)
    return ROLES.get(role, frozenset()) <= caller_scopes


def scopes_for_roles(roles: Iterable[str]) -> frozenset[str]:
    """The union of the roles' scopes; an unknown role is INVALID_ARGUMENT on `roles`."""
    scopes: set[str] = set()
    for role in roles:
        granted = ROLES.get(role)
        if granted is None:
            raise InvalidArgument.field(
                "roles", f"unknown role {role[:64]!r}; known: {', '.join(sorted(ROLES))}"
            )
        scopes |= granted
    return frozenset(scopes)


def check_scopes(scopes: Iterable[str], field: str = "scopes") -> frozenset[str]:
    """Scopes as a set, every one of them known (INVALID_ARGUMENT on `field` otherwise)."""
    wanted = frozenset(scopes)
    unknown = sorted(wanted - ALL_SCOPES)
    if unknown:
        raise InvalidArgument.field(
            field, f"unknown scopes {', '.join(s[:64] for s in unknown[:5])}"
        )
    return wanted


def granted_scopes(roles: Iterable[str]) -> frozenset[str]:
    """The scopes stored roles grant today; a role since dropped from the catalogue
    grants nothing (tokens are issued from it, so this must not fail a login)."""
    return frozenset().union(*(ROLES.get(role, frozenset()) for role in roles))
