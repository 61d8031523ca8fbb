"""The catalog's shelf: scenario manifests (the folder may not exist yet), search,
installations on both stores, and adoption joined with the gateway's call counts read
over real HTTP from a Prometheus endpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from devstack.stack import free_port
from services.empower.domain.catalog import (
    Catalog,
    ComponentFacts,
    GrpcService,
    InstallDetails,
    InstalledResource,
    InstallState,
    ItemKind,
)
from services.empower.gateway_facts import CALLS_METRIC, GatewayFacts
from services.empower.scenario_manifests import ScenarioManifests
from services.kit.components import COMPONENTS
from services.kit.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from tests.unit.empower.datasets.conftest import (
    DISTRICT,
    TOWN,
    XIANGYANG,
    XINGMING,
    caller,
    published,
)

MANIFEST = """
id: Elderly Care
display_name: Care for the elderly living alone
description: Daily check-ins and visits.
version: 1.2.0
area: elderly care
components: [events, empower]
"""


class Probe:
    """Answers as a running component would; the reflection probe is tested over gRPC
    in tests/unit/gateway/test_datasets_routes.py."""

    def __init__(self) -> None:
        self.asked = 0

    async def describe(self, component: str) -> ComponentFacts:
        self.asked += 1
        return ComponentFacts((GrpcService(f"grassroots.{component}.v1.X", ("Get",)),), "SERVING")


class Routes:
    async def routes(self) -> Mapping[str, Sequence[str]] | None:
        return {"events": ["GET /v1/tenants/{tenant}/events"]}

    def docs_uri(self, component: str) -> str:
        return f"/docs#/{component}"


def write_scenarios(folder: Path) -> Path:
    (folder / "elderly").mkdir(parents=True)
    (folder / "elderly" / "manifest.yaml").write_text(MANIFEST)
    (folder / "garbage.json").write_text('{"title": "Garbage sorting", "area": "environment"}')
    (folder / "broken").mkdir()
    (folder / "broken" / "manifest.yaml").write_text("id: [unclosed")
    (folder / "notes.txt").write_text("not a manifest")
    return folder


def test_an_absent_scenarios_folder_is_an_empty_shelf(tmp_path: Path):
    assert ScenarioManifests(tmp_path / "scenarios").templates() == []


def test_manifests_are_read_and_a_broken_one_is_left_out(tmp_path: Path):
    templates = ScenarioManifests(write_scenarios(tmp_path / "scenarios")).templates()
    assert [(t.template_id, t.display_name, t.area) for t in templates] == [
        ("elderly-care", "Care for the elderly living alone", "elderly care"),
        ("garbage", "Garbage sorting", "environment"),
    ]
    assert templates[0].components == ("events", "empower")
    assert templates[0].version == "1.2.0"


def test_a_manifest_is_parsed_again_only_when_it_changes(tmp_path: Path):
    shelf = ScenarioManifests(write_scenarios(tmp_path / "scenarios"))
    first = shelf.templates()
    assert shelf.templates() == first
    assert shelf.templates()[0] is first[0]  # unchanged: not parsed again
    (tmp_path / "scenarios" / "elderly" / "manifest.yaml").write_text(
        MANIFEST.replace("version: 1.2.0", "version: 1.3.0")
    )
    assert shelf.templates()[0].version == "1.3.0"
    (tmp_path / "scenarios" / "new").mkdir()
    (tmp_path / "scenarios" / "new" / "manifest.yaml").write_text("id: new\ntitle: New")
    assert "new" in {t.template_id for t in shelf.templates()}


def catalog_on(backend, folder: Path, usage=None) -> tuple[Catalog, Probe]:
    probe = Probe()

    class NoCalls:
        async def calls(self):
            return None

    shelf = Catalog(
        list(COMPONENTS.values()),
        probe,
        Routes(),
        ScenarioManifests(folder),
        backend.store,
        usage or NoCalls(),
        tenants=backend.identity,
        version="0.1.0",
    )
    return shelf, probe


async def test_search_by_text_area_and_kind(backend, tmp_path: Path):
    shelf, probe = catalog_on(backend, write_scenarios(tmp_path / "scenarios"))
    await published(backend.desk)
    who = caller(XINGMING, "catalog:read")
    everything, token = await shelf.list_items(who, None, "", "", 100, "")
    assert token == ""
    kinds = [i.kind for i in everything]
    assert kinds.count(ItemKind.COMPONENT) == len(COMPONENTS)
    assert kinds.count(ItemKind.SCENARIO) == 2 and kinds.count(ItemKind.DATASET) == 1
    events = next(i for i in everything if i.display_name == "events")
    assert events.rest_routes == ("GET /v1/tenants/{tenant}/events",)
    assert events.grpc_services[0].methods == ("Get",) and events.health == "SERVING"
    assert "Reports from residents" in events.description
    found, _ = await shelf.list_items(who, None, 'area = "Elderly Care"', "", 100, "")
    assert sorted(i.kind.value for i in found) == ["dataset", "scenario"]
    found, _ = await shelf.list_items(who, None, 'kind = "scenario"', "garbage", 100, "")
    assert [i.resource_name for i in found] == ["catalogItems/scenario-garbage"]
    page, token = await shelf.list_items(who, None, "", "", 2, "")
    rest, _ = await shelf.list_items(who, None, "", "", 100, token)
    assert [i.item_id for i in page + rest] == [i.item_id for i in everything]
    # Components were probed once for all of that: their facts are cached.
    assert probe.asked == len(COMPONENTS)
    with pytest.raises(InvalidArgument) as refused:
        await shelf.list_items(who, None, 'kind = "robot"', "", 10, "")
    assert refused.value.violations[0].field == "filter"
    with pytest.raises(NotFound):
        await shelf.list_items(who, XIANGYANG, "", "", 10, "")
    # Datasets are on the shelf only below their publisher.
    elsewhere, _ = await shelf.list_items(
        caller("sh/baoshan", "catalog:read"), None, 'kind = "dataset"', "", 10, ""
    )
    assert elsewhere == []


async def test_installing_a_scenario_is_recorded_once_per_village(backend, tmp_path: Path):
    shelf, _ = catalog_on(backend, write_scenarios(tmp_path / "scenarios"))
    secretary = caller(XINGMING, "scenarios:install", "catalog:read")
    item = "catalogItems/scenario-elderly-care"
    installed = await shelf.install(secretary, XINGMING, item)
    assert installed.resource_name.startswith("tenants/sh-jiading-anting-xingming/installations/")
    with pytest.raises(AlreadyExists):
        await shelf.install(secretary, XINGMING, item)
    with pytest.raises(InvalidArgument) as refused:
        await shelf.install(secretary, XINGMING, "catalogItems/component-map")
    assert refused.value.violations[0].field == "installation.catalog_item"
    with pytest.raises(NotFound):
        await shelf.install(secretary, XIANGYANG, item)
    # A node the caller's subtree could hold but the tree does not: nothing is recorded.
    with pytest.raises(NotFound) as missing:
        await shelf.install(caller(TOWN, "scenarios:install"), f"{TOWN}/nowhere", item)
    assert "nowhere" in str(missing.value)
    with pytest.raises(PermissionDenied):
        await shelf.install(caller(XINGMING, "catalog:read"), XINGMING, item)
    town = caller(TOWN, "catalog:read")
    listed, _ = await shelf.list_installations(town, TOWN, 10, "")
    assert [i.catalog_item for i in listed] == [item]
    assert (await shelf.list_installations(caller(XIANGYANG, "catalog:read"), XIANGYANG, 10, ""))[
        0
    ] == []


async def test_an_installation_keeps_its_version_state_settings_and_resources(
    backend, tmp_path: Path
):
    shelf, _ = catalog_on(backend, write_scenarios(tmp_path / "scenarios"))
    composer = caller(XINGMING, "scenarios:install", "catalog:read")
    rule = InstalledResource(
        "tenants/sh-jiading-anting-xingming/routingRules/sc-smoke",
        "command.routing_rules",
        "smoke",
        "d1",
        owned=True,
    )
    begun = await shelf.install(
        composer,
        XINGMING,
        "catalogItems/scenario-elderly-care",
        InstallDetails("1.0.0", InstallState.INCOMPLETE, {"radius": 50}, (rule,)),
    )
    read = await shelf.get_installation(composer, begun.resource_name)
    assert read.details == begun.details
    assert read.details.settings == {"radius": 50}

    shared = InstalledResource("categories/x", "events.categories", "x", "d2", owned=False)
    done = await shelf.update_installation(
        composer,
        begun.resource_name,
        InstallDetails("1.1.0", InstallState.COMPLETE, {}, (rule, shared)),
        ["version", "state", "resources"],
    )
    read = await shelf.get_installation(composer, begun.resource_name)
    assert read.details == done.details
    assert (read.details.version, read.details.state) == ("1.1.0", InstallState.COMPLETE)
    assert read.details.settings == {"radius": 50}  # not in the mask: kept
    assert read.details.resources[1].owned is False
    listed, _ = await shelf.list_installations(composer, XINGMING, 10, "")
    assert listed[0].details == done.details

    with pytest.raises(InvalidArgument) as bad_mask:
        await shelf.update_installation(composer, begun.resource_name, done.details, ["installer"])
    assert bad_mask.value.violations[0].field == "update_mask"
    too_long = InstallDetails("x" * 65)
    with pytest.raises(InvalidArgument) as bad_version:
        await shelf.update_installation(composer, begun.resource_name, too_long, ["version"])
    assert bad_version.value.violations[0].field == "installation.version"
    neighbour = caller(XIANGYANG, "scenarios:install", "catalog:read")
    with pytest.raises(NotFound):
        await shelf.get_installation(neighbour, begun.resource_name)
    with pytest.raises(NotFound):
        await shelf.delete_installation(neighbour, begun.resource_name)
    with pytest.raises(PermissionDenied):
        await shelf.delete_installation(caller(XINGMING, "catalog:read"), begun.resource_name)

    await shelf.delete_installation(composer, begun.resource_name)
    with pytest.raises(NotFound):
        await shelf.get_installation(composer, begun.resource_name)
    assert (await shelf.list_installations(composer, XINGMING, 10, ""))[0] == []


def test_an_older_sqlite_file_gains_the_installation_details_in_place(tmp_path: Path):
    import sqlite3

    from services.empower.store.datasets_sqlite import SqliteDatasetStore

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE catalog_installations (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
            "catalog_item TEXT NOT NULL, installer TEXT NOT NULL, create_us INTEGER NOT NULL, "
            "UNIQUE (tenant, catalog_item))"
        )
        conn.execute(
            "INSERT INTO catalog_installations VALUES ('ins_1', ?, 'catalogItems/scenario-x', "
            "'users/a', 1)",
            (XINGMING,),
        )
    store = SqliteDatasetStore(path)
    try:
        import asyncio

        found = asyncio.run(store.list_installations(XINGMING, 10, None))
    finally:
        store.close()
    assert found[0].details == InstallDetails()
    assert found[0].update_time is None


async def test_adoption_joins_subscriptions_installations_and_the_gateways_calls(
    backend, tmp_path: Path
):
    registry = CollectorRegistry()
    calls = Counter(CALLS_METRIC, "calls", ["component", "tenant"], registry=registry)
    calls.labels("events", XINGMING).inc(7)
    calls.labels("empower", XINGMING).inc(2)
    calls.labels("map", XIANGYANG).inc(3)
    calls.labels("map", "sh/baoshan/x").inc(9)  # another district: not in the view
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    gateway = GatewayFacts(f"http://127.0.0.1:{port}")
    try:
        shelf, _ = catalog_on(backend, write_scenarios(tmp_path / "scenarios"), gateway)
        dataset = await published(backend.desk)
        await backend.desk.subscribe(
            caller(XINGMING, "datasets:read"), XINGMING, dataset.resource_name
        )
        await shelf.install(
            caller(XIANGYANG, "scenarios:install"), XIANGYANG, "catalogItems/scenario-garbage"
        )
        adoption = await shelf.adoption(caller(DISTRICT, "catalog:read"), DISTRICT)
        assert adoption.calls_available
        nodes = {n.tenant: n for n in adoption.nodes}
        assert set(nodes) == {XINGMING, XIANGYANG}
        assert nodes[XINGMING].datasets == [dataset.resource_name]
        assert nodes[XINGMING].calls == {"events": 7, "empower": 2}
        assert nodes[XIANGYANG].scenarios == ["catalogItems/scenario-garbage"]
        assert nodes[XIANGYANG].calls == {"map": 3}
        own = await shelf.adoption(caller(XINGMING, "catalog:read"), XINGMING)
        assert [n.tenant for n in own.nodes] == [XINGMING]
        with pytest.raises(NotFound):
            await shelf.adoption(caller(XINGMING, "catalog:read"), DISTRICT)
    finally:
        await gateway.close()
        server.shutdown()
        thread.join()


async def test_without_the_gateway_calls_are_unknown_not_zero(backend, tmp_path: Path):
    gateway = GatewayFacts(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        shelf, _ = catalog_on(backend, tmp_path / "none", gateway)
        adoption = await shelf.adoption(caller(DISTRICT, "catalog:read"), DISTRICT)
        assert (adoption.nodes, adoption.calls_available) == ([], False)
        assert await gateway.routes() is None
    finally:
        await gateway.close()
