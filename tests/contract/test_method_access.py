"""Every RPC declares who may call it in the contract, and the kit reads exactly that."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
from google.protobuf import descriptor_pool

from services.kit.components import COMPONENTS
from services.kit.scopes import ANY_PRINCIPAL, method_scopes, scope_of

SCOPE = re.compile(r"^[a-z]+:[a-z_]+$")


def _import_contracts() -> None:
    for row in COMPONENTS.values():
        package = importlib.import_module(f"grassroots.{row.name}.v1")
        for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            if info.name.endswith("_pb2"):
                importlib.import_module(info.name)


@pytest.mark.parametrize(
    "service_name", [name for row in COMPONENTS.values() for name in row.service_names]
)
def test_every_method_declares_one_access_rule(service_name):
    _import_contracts()
    service = descriptor_pool.Default().FindServiceByName(service_name)
    table = method_scopes(service_name)
    for method in service.methods:
        path = f"/{service_name}/{method.name}"
        assert path in table, f"{path} declares no (grassroots.type.v1.access) option"
        scope = table[path]
        assert scope == ANY_PRINCIPAL or SCOPE.match(scope), (path, scope)
        assert scope_of(path) == scope


def test_scopes_read_from_the_contract():
    from grassroots.empower.v1 import identity_service_pb2  # noqa: F401
    from grassroots.events.v1 import events_service_pb2  # noqa: F401

    assert scope_of("/grassroots.events.v1.EventsService/CreateCategory") == "events:configure"
    assert scope_of("/grassroots.events.v1.EventsService/GetEvent") == "events:read"
    assert scope_of("/grassroots.empower.v1.IdentityService/Login") == "identity:verify"
    assert scope_of("/grassroots.empower.v1.IdentityService/GetUser") == ANY_PRINCIPAL
    assert scope_of("/grassroots.events.v1.EventsService/NoSuchMethod") is None
    assert scope_of("/grassroots.nothing.v1.Nothing/Get") is None


def test_scope_names_an_access_scope_and_nothing_else():
    """A tenant subtree travels as a `parent` or a resource name (ADR 9), never as a field
    called `scope`, which the access option uses for the OAuth scope."""
    _import_contracts()
    from grassroots.type.v1 import annotations_pb2

    pool = descriptor_pool.Default()
    seen = [annotations_pb2.DESCRIPTOR]
    named = []
    for row in COMPONENTS.values():
        for name in row.service_names:
            seen.append(pool.FindServiceByName(name).file)
    for file in seen:
        stack = list(file.message_types_by_name.values())
        while stack:
            message = stack.pop()
            stack.extend(message.nested_types)
            named += [
                f"{message.full_name}.{field.name}"
                for field in message.fields
                if field.name in ("scope", "subtree_scope", "tenant_scope")
            ]
    assert named == ["grassroots.type.v1.MethodAccess.scope"], named


def test_stores_and_ports_call_a_tenant_subtree_subtree():
    """Inside the services a tenant subtree is `subtree` (ADR 22), so `scope` always means
    an OAuth scope: no store, port or row-security helper takes a parameter `scope`."""
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    paths = [
        *repo.glob("services/*/store/*.py"),
        *repo.glob("services/*/domain/**/*ports.py"),
        repo / "services/kit/rls.py",
        repo / "services/kit/sqldialect.py",
    ]
    assert len(paths) > 40
    named = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.arguments):
                every = [*node.posonlyargs, *node.args, *node.kwonlyargs]
                named += [f"{path.relative_to(repo)}:{a.lineno}" for a in every if a.arg == "scope"]
    assert not named, named
