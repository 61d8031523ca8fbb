"""Every REST route needs exactly the scopes its RPCs' contracts declare (ADR 12).

The gateway never writes a scope: `access(component)` takes the scopes of the RPCs a
route declares with `@calls`, read from the `(grassroots.type.v1.access)` method
option. This test reads the routers' code and fails when

* a route reaches an RPC (directly or through helpers of the gateway) that its
  `@calls` do not declare, or declares one it never reaches;
* a route under `access` declares nothing, or an RPC of another component;
* a dependency names a scope by hand (`access("events:read")`);
* a route without a caller's principal calls an RPC the gateway itself may not.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from google.protobuf import descriptor_pool

from gateway import auth
from gateway.security.sources import gateway_principal
from services.kit.components import COMPONENTS, NAMES
from services.kit.scopes import scope_of

REPO = Path(__file__).resolve().parents[2]
_HTTP_VERBS = {"get", "post", "put", "patch", "delete", "api_route", "websocket"}


def _contracts() -> dict[str, str]:
    """Every RPC of the components: `/pkg.Service/Method` -> component."""
    owner = {}
    for row in COMPONENTS.values():
        package = importlib.import_module(f"grassroots.{row.name}.v1")
        for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            if info.name.endswith("_pb2"):
                importlib.import_module(info.name)
        for name in row.service_names:
            for method in descriptor_pool.Default().FindServiceByName(name).methods:
                owner[f"/{name}/{method.name}"] = row.name
    return owner


def _stub_services() -> dict[str, str]:
    """`Upstreams` attribute -> full service name (`events` -> ...EventsService)."""
    tree = ast.parse((REPO / "gateway" / "upstreams.py").read_text())
    packages = {
        alias.asname or alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("grass")
        for alias in node.names
    }
    stubs = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr.endswith("Stub")
            and isinstance(node.value.func.value, ast.Name)
        ):
            target = node.targets[0]
            assert isinstance(target, ast.Attribute)
            package = packages[node.value.func.value.id]
            stubs[target.attr] = f"{package}.{node.value.func.attr.removesuffix('Stub')}"
    return stubs


class _Module:
    """One gateway module's functions, the RPCs each calls and the functions it uses."""

    def __init__(self, name: str, stubs: dict[str, str], rpcs: dict[str, str]) -> None:
        self.name = name
        path = Path(inspect.getfile(importlib.import_module(name)))
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.functions = {
            node.name: node
            for node in self.tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        # `from gateway.x import helper`: where a name used here is defined.
        self.imported = {
            alias.asname or alias.name: (node.module, alias.name)
            for node in self.tree.body
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gateway")
            for alias in node.names
        }
        self.stubs, self.rpcs = stubs, rpcs
        # Helpers that hand out a stub (`def _stub(request): return ...upstreams.plans`).
        self.getters: dict[str, str] = {}
        for function, node in self.functions.items():
            returns = [n for n in ast.walk(node) if isinstance(n, ast.Return) and n.value]
            if len(returns) == 1:
                service = self._stub_of(returns[0].value, {})  # type: ignore[arg-type]
                if service is not None:
                    self.getters[function] = service

    def _stub_of(self, value: ast.expr, bound: dict[str, str]) -> str | None:
        """The service a receiver expression stands for, if it is a stub."""
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            return getattr(self, "getters", {}).get(value.func.id)
        if isinstance(value, ast.Attribute):
            owner = value.value
            if (isinstance(owner, ast.Attribute) and owner.attr == "upstreams") or (
                isinstance(owner, ast.Name) and owner.id == "upstreams"
            ):
                return self.stubs.get(value.attr)
        if isinstance(value, ast.Name):
            return bound.get(value.id)
        return None

    def reach(self, function: str) -> tuple[set[str], set[tuple[str, str]], list[str]]:
        """RPCs one function calls itself, the gateway functions it calls, and calls
        of an RPC name whose stub could not be told (reported, so the check stays whole)."""
        node = self.functions[function]
        bound: dict[str, str] = {}
        for sub in ast.walk(node):
            if isinstance(sub, ast.Assign) and len(sub.targets) == 1:
                target = sub.targets[0]
                service = self._stub_of(sub.value, {})
                if isinstance(target, ast.Name) and service is not None:
                    bound[target.id] = service
        called: set[str] = set()
        uses: set[tuple[str, str]] = set()
        unknown: list[str] = []
        local = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)} | {
            n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id not in local:
                if sub.id in self.functions and sub.id != function:
                    uses.add((self.name, sub.id))
                elif sub.id in self.imported:
                    uses.add(self.imported[sub.id])
            if isinstance(sub, ast.Call):
                # A stub handed to other code (a coalescer's `create(stub, ...)`) may
                # have any of its RPCs called there: `/Service/*`.
                for arg in [*sub.args, *(k.value for k in sub.keywords)]:
                    handed = self._stub_of(arg, bound)
                    if handed is not None:
                        called.add(f"/{handed}/*")
            if not (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute)):
                continue
            method = sub.func.attr
            service = self._stub_of(sub.func.value, bound)
            if service is not None:
                called.add(f"/{service}/{method}")
            elif method in self.rpcs and not _is_module(sub.func.value, self.tree):
                unknown.append(f"{self.name}.{function}: .{method}(...) on an unknown stub")
        return called, uses, unknown


def _is_module(value: ast.expr, tree: ast.Module) -> bool:
    """A receiver that is an imported module (`pb.Event(...)` builds a message)."""
    if not isinstance(value, ast.Name):
        return False
    return any(
        (alias.asname or alias.name) == value.id
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    )


class _Reach:
    """RPCs reachable from a function, through gateway helpers in any module."""

    def __init__(self) -> None:
        self.contracts = _contracts()
        self.stubs = _stub_services()
        self.method_names = {path.rsplit("/", 1)[1]: path for path in self.contracts}
        self.modules: dict[str, _Module] = {}
        self.unknown: list[str] = []

    def module(self, name: str) -> _Module | None:
        if name not in self.modules:
            try:
                self.modules[name] = _Module(name, self.stubs, self.method_names)
            except (ImportError, TypeError):
                return None
        return self.modules[name]

    def rpcs(self, module: str, function: str) -> set[str]:
        seen: set[tuple[str, str]] = set()
        todo = [(module, function)]
        found: set[str] = set()
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            found_module = self.module(key[0])
            if found_module is None or key[1] not in found_module.functions:
                continue
            called, uses, unknown = found_module.reach(key[1])
            found |= called
            self.unknown += unknown
            todo.extend(uses)
        return found


def _routes() -> Iterator[tuple[str, APIRoute]]:
    package = importlib.import_module("gateway.routers")
    for info in pkgutil.iter_modules(package.__path__, "gateway.routers."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, APIRouter):
                for route in value.routes:
                    if isinstance(route, APIRoute):
                        yield info.name, route


def _dependencies(route: APIRoute) -> list[Callable[..., Any]]:
    calls, stack = [], list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if dependency.call is not None:
            calls.append(dependency.call)
        stack.extend(dependency.dependencies)
    return calls


@pytest.fixture(scope="module")
def reach() -> _Reach:
    return _Reach()


@pytest.fixture(scope="module")
def routes() -> list[tuple[str, APIRoute]]:
    found = list(_routes())
    assert len(found) > 100, len(found)
    return found


def _label(route: APIRoute) -> str:
    return f"{','.join(sorted(route.methods))} {route.path} ({route.endpoint.__name__})"


def test_every_route_declares_exactly_the_rpcs_it_calls(reach, routes):
    problems = []
    for module, route in routes:
        endpoint = inspect.unwrap(route.endpoint)
        reached = reach.rpcs(module, endpoint.__name__)
        declared = set(auth.ENDPOINT_RPCS.get(route.endpoint, ()))
        handed = {rpc.removesuffix("*") for rpc in reached if rpc.endswith("/*")}
        for rpc in sorted(reached - declared):
            if not rpc.endswith("/*"):
                problems.append(f"{_label(route)} calls {rpc} without @calls")
        for rpc in sorted(declared - reached):
            if not any(rpc.startswith(prefix) for prefix in handed):
                problems.append(f"{_label(route)} declares {rpc} but never calls it")
        for prefix in sorted(handed):
            if not any(rpc.startswith(prefix) for rpc in declared):
                problems.append(f"{_label(route)} hands {prefix}* on without @calls")
    assert not reach.unknown, "\n".join(reach.unknown)
    assert not problems, "\n".join(problems)


def test_a_route_under_access_takes_its_scopes_from_its_rpcs_of_its_component(reach, routes):
    problems, checked = [], 0
    for _, route in routes:
        names = {getattr(call, "__name__", "") for call in _dependencies(route)}
        fronted = {n.removeprefix("access_") for n in names if n.startswith("access_")}
        if not fronted:
            continue
        checked += 1
        declared = auth.ENDPOINT_RPCS.get(route.endpoint)
        if not declared:
            problems.append(f"{_label(route)} is under access() without @calls")
            continue
        for rpc in declared:
            if reach.contracts[rpc] not in fronted:
                problems.append(f"{_label(route)} fronts {fronted} but calls {rpc}")
        expected = frozenset(s for s in map(scope_of, declared) if s)
        if auth.endpoint_scopes(route.endpoint) != expected:
            problems.append(f"{_label(route)} needs {auth.endpoint_scopes(route.endpoint)}")
    assert checked > 100
    assert not problems, "\n".join(problems)


def test_routes_without_a_caller_call_only_what_the_gateway_itself_may(reach, routes):
    gateway = gateway_principal("sh")
    problems = []
    for _, route in routes:
        names = {getattr(call, "__name__", "") for call in _dependencies(route)}
        if any(n.startswith(("access_", "public", "authenticated")) for n in names):
            continue
        for rpc in auth.ENDPOINT_RPCS.get(route.endpoint, ()):
            scope = scope_of(rpc)
            if not scope or not gateway.has_scope(scope):
                problems.append(f"{_label(route)} calls {rpc} ({scope!r}) as the gateway")
    assert not problems, "\n".join(problems)


def test_no_dependency_names_a_scope_by_hand():
    for hand_written in ("events:read", "empower:read", "", "nothing"):
        with pytest.raises(ValueError, match="takes a component"):
            auth.access(hand_written)
    assert {auth.access(name).__name__ for name in NAMES} == {f"access_{n}" for n in NAMES}


def test_the_check_sees_an_undeclared_rpc_behind_a_helper(reach, tmp_path, monkeypatch):
    (tmp_path / "probe_router.py").write_text(
        "from fastapi import APIRouter, Request\n"
        "from grassroots.events.v1 import events_service_pb2 as pb\n"
        "router = APIRouter()\n"
        "async def _lookup(request):\n"
        "    events = request.app.state.upstreams.events\n"
        "    return await events.GetEvent(pb.GetEventRequest(name='x'))\n"
        "@router.get('/probe')\n"
        "async def probe(request: Request):\n"
        "    await request.app.state.upstreams.map.ListLayers(None)\n"
        "    return await _lookup(request)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert reach.rpcs("probe_router", "probe") == {
            "/grassroots.events.v1.EventsService/GetEvent",
            "/grassroots.map.v1.MapService/ListLayers",
        }
    finally:
        sys.modules.pop("probe_router", None)


def test_a_mistyped_rpc_fails_at_import_time():
    with pytest.raises(ValueError, match="NoSuchMethod"):
        auth.calls("grassroots.events.v1.EventsService", "NoSuchMethod")
