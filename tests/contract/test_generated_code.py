"""The committed stubs are what `make proto` makes from today's contracts."""

from __future__ import annotations

import filecmp
import importlib
from pathlib import Path

from tools import protogen

REPO = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in (root / "grassroots").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_is_up_to_date(tmp_path):
    protogen.generate(tmp_path)
    fresh, committed = _tree(tmp_path), _tree(REPO)
    assert fresh == committed, (
        f"run `make proto`: missing {sorted(fresh - committed)}, stale {sorted(committed - fresh)}"
    )
    stale = [
        name
        for name in sorted(fresh)
        if not filecmp.cmp(tmp_path / name, REPO / name, shallow=False)
    ]
    assert not stale, f"generated code is stale, run `make proto`: {stale}"


def test_every_service_contract_imports_and_names_its_package():
    for component, service in [
        ("map", "MapService"),
        ("events", "EventsService"),
        ("command", "CommandService"),
        ("twin", "TwinService"),
        ("empower", "EmpowerService"),
    ]:
        module = importlib.import_module(f"grassroots.{component}.v1.{component}_service_pb2")
        descriptor = module.DESCRIPTOR
        assert descriptor.package == f"grassroots.{component}.v1"
        assert service in descriptor.services_by_name


def test_enum_zero_values_are_unspecified():
    from grassroots.events.v1 import events_service_pb2
    from grassroots.type.v1 import principal_pb2

    for enum in (
        events_service_pb2.Event.State,
        events_service_pb2.Event.Source,
        principal_pb2.Principal.Kind,
    ):
        assert enum.Name(0).endswith("_UNSPECIFIED")
