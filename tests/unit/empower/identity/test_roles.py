"""The roles catalogue: who holds what, and who therefore can create whom."""

from __future__ import annotations

import pytest

from services.empower.domain.roles import (
    ALL_SCOPES,
    ASSIGNABLE_ROLES,
    ROLES,
    check_scopes,
    granted_scopes,
    may_assign,
    scopes_for_roles,
)
from services.kit.errors import InvalidArgument


def test_every_role_grants_known_scopes_only():
    for role, scopes in ROLES.items():
        assert scopes, role
        assert scopes <= ALL_SCOPES, (role, scopes - ALL_SCOPES)


def test_sensitive_personal_data_is_for_village_staff():
    holders = {role for role, scopes in ROLES.items() if "people:read_sensitive" in scopes}
    # A carer reads unmasked only the people assigned to them (a person's `carer`).
    assert holders == {"village_secretary"}
    assert "people:read" in ROLES["carer"]
    assert "audit:read" in ROLES["district_auditor"]
    assert not {s for s in ROLES["district_auditor"] if s.endswith(":write")}


def test_administrators_hold_what_they_administer():
    assert {"tenants:write", "users:write", "apps:write"} <= ROLES["district_admin"]
    assert {"people:read", "people:write"} <= ROLES["district_admin"]
    assert {"users:write", "apps:write", "people:read_sensitive"} <= ROLES["village_secretary"]
    assert ROLES["grid_worker"] == {
        "events:read",
        "events:write",
        "events:handle",
        "map:read",
        "people:read",
        "command:read",
        "command:dispatch",
        "forms:write",
    }
    # Village and town staff run forms and reports, points and notices.
    for role in ("village_secretary", "town_officer"):
        assert {"forms:write", "reports:read", "points:write", "notices:send"} <= ROLES[role]
    assert ROLES["resident"] == {"events:read", "events:write"}
    # A village secretary can make every role of village life, a carer included.
    for role in ("grid_worker", "carer", "volunteer", "resident"):
        assert ROLES[role] <= ROLES["village_secretary"], role
    # A district admin holds a carer's scopes, not the secretary's sensitive one.
    assert "people:read_sensitive" not in ROLES["district_admin"]


def test_the_right_to_assign_is_separate_from_the_scopes_assigned():
    assert set(ASSIGNABLE_ROLES) == set(ROLES)
    for role, assignable in ASSIGNABLE_ROLES.items():
        assert assignable <= set(ROLES), role
        assert role not in assignable, f"{role} would appoint its peers"
    admin = ("district_admin",), ROLES["district_admin"]
    # District IT appoints a village secretary and carers without reading their data.
    assert may_assign("village_secretary", *admin)
    assert may_assign("carer", *admin)
    assert not may_assign("district_admin", *admin)
    secretary = ("village_secretary",), ROLES["village_secretary"]
    assert may_assign("carer", *secretary) and may_assign("grid_worker", *secretary)
    # Holding a role's scopes is not enough for a person: a secretary holds a town
    # officer's scopes but appoints no town officer.
    assert ROLES["town_officer"] <= ROLES["village_secretary"]
    assert not may_assign("town_officer", *secretary)
    assert not may_assign("village_secretary", ("town_officer",), ROLES["town_officer"])
    assert not may_assign("resident", ("grid_worker",), ROLES["grid_worker"])
    # Callers without roles (services, apps) grant only what they hold.
    assert may_assign("resident", (), frozenset({"events:read", "events:write"}))
    assert not may_assign("village_secretary", (), ROLES["district_admin"])


def test_scopes_for_roles_is_the_union_and_refuses_unknown_roles():
    assert scopes_for_roles(["volunteer", "carer"]) == ROLES["volunteer"] | ROLES["carer"]
    assert scopes_for_roles([]) == frozenset()
    with pytest.raises(InvalidArgument) as info:
        scopes_for_roles(["resident", "mayor"])
    assert info.value.violations[0].field == "roles"
    assert "mayor" in info.value.message


def test_granted_scopes_ignores_roles_dropped_from_the_catalogue():
    assert granted_scopes(["resident", "retired_role"]) == ROLES["resident"]


def test_check_scopes_names_the_field():
    assert check_scopes(["map:read"]) == {"map:read"}
    with pytest.raises(InvalidArgument) as info:
        check_scopes(["map:read", "root"], field="app.scopes")
    assert info.value.violations[0].field == "app.scopes"
