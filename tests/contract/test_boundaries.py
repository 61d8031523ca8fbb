"""Import boundaries that keep components replaceable: checked, not only agreed.

The gateway talks to components through their contracts (the generated `grassroots`
stubs) and may use the kit; importing a component's own code would tie the gateway
to its internals and let the two drift apart unnoticed. A component's domain is pure
logic: no gRPC, no HTTP, no SQL driver, and nothing of its own adapters, so it can be
read and tested without a server. Both checks read the syntax tree, so an import by
string (`importlib.import_module("services.events.api")`, `__import__(...)`) counts
as much as an `import` statement.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = sorted(p.parent.name for p in (REPO / "services").glob("*/domain"))

# What a domain package may not import: transports and SQL drivers belong to adapters.
ADAPTER_LIBRARIES = (
    "grpc",
    "grpc_health",
    "grpc_reflection",
    "google.rpc",
    "fastapi",
    "starlette",
    "httpx",
    "aiohttp",
    "requests",
    "sqlite3",
    "aiosqlite",
    "asyncpg",
    "psycopg",
    "psycopg2",
    "redis",
)
# Functions that import a module named by a string argument.
_DYNAMIC_IMPORTERS = {"import_module", "__import__"}


def _dynamic_name(node: ast.Call) -> str | None:
    """The module a call like `importlib.import_module("x.y")` imports, if it is one.

    An f-string counts by its literal head (`f"services.{name}.api"` is
    `services.*.api` as far as the boundary is concerned)."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in _DYNAMIC_IMPORTERS or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    if isinstance(first, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) else "*" for part in first.values
        )
    return "<computed>"


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from services import events` names a component module too.
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call):
            module = _dynamic_name(node)
            if module is not None:
                found.append((node.lineno, module))
    return found


def _component_imports(root: Path) -> list[str]:
    crossing = []
    for path in sorted(root.rglob("*.py")):
        for line, module in _imported_modules(path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] != "kit":
                crossing.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return crossing


def _domain_crossings(component: str, repo: Path = REPO) -> list[str]:
    """Adapter libraries, and the component's own non-domain modules, a domain imports."""
    root = repo / "services" / component / "domain"
    own = f"services.{component}."
    crossing = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        relative = [
            (n.lineno, n.level, n.module or "")
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.level > 0
        ]
        depth = len(path.relative_to(root).parts)  # 1 for domain/x.py
        for line, level, module in relative:
            if level >= depth + 1:  # `from ..api import` climbs out of the domain
                crossing.append(f"{path.relative_to(repo)}:{line} imports {'.' * level}{module}")
        for line, module in _imported_modules(path):
            library = any(
                module == lib or module.startswith(f"{lib}.") for lib in ADAPTER_LIBRARIES
            )
            adapter = module.startswith(own) and not module.startswith(f"{own}domain")
            other = (
                module.startswith("services.")
                and not module.startswith(own)
                and not module.startswith("services.kit")
            )
            if library or adapter or other or module == "<computed>":
                crossing.append(f"{path.relative_to(repo)}:{line} imports {module}")
    return crossing


def test_the_gateway_imports_no_component_code_but_the_kit():
    crossing = _component_imports(REPO / "gateway")
    assert not crossing, "use the contract types instead:\n" + "\n".join(crossing)


@pytest.mark.parametrize("component", COMPONENTS)
def test_a_domain_imports_no_transport_sql_driver_or_adapter(component):
    crossing = _domain_crossings(component)
    assert not crossing, "keep these in the adapters:\n" + "\n".join(crossing)


def test_every_component_has_a_domain_to_check():
    assert set(COMPONENTS) >= {"map", "events", "command", "twin", "empower"}


def test_the_check_sees_a_component_import(tmp_path):
    (tmp_path / "router.py").write_text(
        "import importlib\n"
        "from services.kit import tenancy\n"
        "from services.events.domain.categories import Category\n"
        "from services import map\n"
        "api = importlib.import_module('services.events.api')\n"
        "store = __import__('services.command.store')\n"
        "name = 'twin'\n"
        "wiring = importlib.import_module(f'services.{name}.wiring')\n"
        "kit = importlib.import_module('services.kit.scopes')\n"
    )
    found = [module for _, module in _imported_modules(tmp_path / "router.py")]
    assert "services.events.domain.categories" in found and "services.map" in found
    assert "services.kit.tenancy" in found
    assert {"services.events.api", "services.command.store", "services.*.wiring"} <= set(found)
    (tmp_path / "gateway").mkdir()
    (tmp_path / "router.py").rename(tmp_path / "gateway" / "router.py")
    crossing = _component_imports(tmp_path / "gateway")
    assert len(crossing) == 6 and not any("services.kit" in c for c in crossing)


def test_the_check_sees_a_domain_reaching_for_an_adapter(tmp_path):
    domain = tmp_path / "services" / "demo" / "domain"
    domain.mkdir(parents=True)
    (domain / "rules.py").write_text(
        "import importlib\n"
        "import numpy\n"
        "from services.kit import tenancy\n"
        "from services.demo.domain.models import Thing\n"
        "import grpc\n"
        "from fastapi import HTTPException\n"
        "httpx = importlib.import_module('httpx')\n"
        "from services.demo.store import sqlite\n"
        "from ..api import Servicer\n"
        "from . import models\n"
    )
    found = _domain_crossings("demo", tmp_path)
    assert {c.rsplit(" imports ", 1)[1] for c in found} == {
        "..api",
        "grpc",
        "fastapi",
        "fastapi.HTTPException",
        "httpx",
        "services.demo.store",
        "services.demo.store.sqlite",
    }, found
