"""The committed stubs are what `make proto` makes from today's contracts.

The contracts and the stubs are copied together before generating, and generated
from the copy: a checkout that changes both while the suite runs (a merge landing
in the tree under test) is then seen before or after, never half way, and the
`tools` package imported is irrelevant to which contracts are read.
"""

from __future__ import annotations

import filecmp
import importlib
import pkgutil
import shutil
from pathlib import Path

from google.protobuf import descriptor_pool

from services.kit.components import COMPONENTS
from tools import protogen

REPO = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in (root / "grassroots").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def _snapshot(into: Path) -> Path:
    """The contracts and the committed stubs of this checkout, copied at one moment."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.binpb")
    shutil.copytree(REPO / "proto", into / "proto", ignore=ignore)
    shutil.copytree(REPO / "grassroots", into / "grassroots", ignore=ignore)
    return into


def test_generated_code_is_up_to_date(tmp_path):
    committed_root = _snapshot(tmp_path / "committed")
    fresh_root = tmp_path / "fresh"
    protogen.generate(fresh_root, proto_root=committed_root / "proto")
    fresh, committed = _tree(fresh_root), _tree(committed_root)
    assert fresh == committed, (
        f"run `make proto`: missing {sorted(fresh - committed)}, stale {sorted(committed - fresh)}"
    )
    stale = [
        name
        for name in sorted(fresh)
        if not filecmp.cmp(fresh_root / name, committed_root / name, shallow=False)
    ]
    assert not stale, f"generated code is stale, run `make proto`: {stale}"


def test_every_service_contract_imports_and_names_its_package():
    for row in COMPONENTS.values():
        module = importlib.import_module(f"grassroots.{row.name}.v1.{row.name}_service_pb2")
        descriptor = module.DESCRIPTOR
        assert descriptor.package == f"grassroots.{row.name}.v1"
        assert row.service_names[0] == f"grassroots.{row.name}.v1.{row.name.title()}Service"
        package = importlib.import_module(f"grassroots.{row.name}.v1")
        for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
            if info.name.endswith("_pb2"):
                importlib.import_module(info.name)
        for full_name in row.service_names:
            # Raises KeyError when the registry names a service no contract declares.
            assert descriptor_pool.Default().FindServiceByName(full_name).full_name == full_name


def test_every_peer_is_a_component_started_before_its_caller():
    order = list(COMPONENTS)
    for row in COMPONENTS.values():
        for peer in row.peers:
            assert order.index(peer) < order.index(row.name), (row.name, peer)


def test_the_gateway_has_an_address_setting_per_component():
    from gateway.settings import GatewaySettings

    fields = set(GatewaySettings.model_fields)
    assert {f"{name}_address" for name in COMPONENTS} <= fields


def test_enum_zero_values_are_unspecified():
    from grassroots.events.v1 import events_service_pb2
    from grassroots.type.v1 import principal_pb2

    for enum in (
        events_service_pb2.Event.State,
        events_service_pb2.Event.Source,
        principal_pb2.Principal.Kind,
    ):
        assert enum.Name(0).endswith("_UNSPECIFIED")
