"""Import boundaries that keep components replaceable: checked, not only agreed.

The gateway talks to components through their contracts (the generated `grassroots`
stubs) and may use the kit; importing a component's own code would tie the gateway
to its internals and let the two drift apart unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


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
    return found


def _component_imports(root: Path) -> list[str]:
    crossing = []
    for path in sorted(root.rglob("*.py")):
        for line, module in _imported_modules(path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] != "kit":
                crossing.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    return crossing


def test_the_gateway_imports_no_component_code_but_the_kit():
    crossing = _component_imports(REPO / "gateway")
    assert not crossing, "use the contract types instead:\n" + "\n".join(crossing)


def test_the_check_sees_a_component_import(tmp_path):
    (tmp_path / "router.py").write_text(
        "from services.kit import tenancy\n"
        "from services.events.domain.categories import Category\n"
        "from services import map\n"
    )
    found = [module for _, module in _imported_modules(tmp_path / "router.py")]
    assert "services.events.domain.categories" in found and "services.map" in found
    assert "services.kit.tenancy" in found
