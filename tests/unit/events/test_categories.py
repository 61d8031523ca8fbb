"""The category tree: built-ins, a town's own, a village's override, persisted."""

from __future__ import annotations

import grpc
import pytest

from grassroots.events.v1 import events_service_pb2 as pb
from services.events.domain.categories import CategoryCatalog
from services.kit import tenancy
from services.kit.principal import Principal
from services.kit.status import failure_of
from tests.conftest import TOWN, XIANGYANG, XINGMING
from tests.unit.events.test_events_api import cell_point, md, report


def configurer(tenant: str) -> tuple:
    return Principal("users/admin", tenant, scopes=frozenset({"events:configure"})).to_metadata()


def category(code: str, **overrides) -> pb.Category:
    values = {
        "code": code,
        "display_name": "Stray dogs",
        "default_severity": 3,
        "sla_minutes": 120,
        "duplicate_radius_meters": 100,
        "duplicate_window_minutes": 60,
    }
    values.update(overrides)
    return pb.Category(**values)


async def define(events, tenant, message, metadata=None):
    return await events.stub.CreateCategory(
        pb.CreateCategoryRequest(parent=tenancy.tenant_name(tenant), category=message),
        metadata=metadata or configurer(tenant),
    )


async def test_a_town_category_reaches_its_villages_and_a_village_can_override(events, grid_index):
    created = await define(events, TOWN, category("animals.stray_dog"))
    assert created.name == "tenants/sh-jiading-anting/categories/animals.stray_dog"
    await define(events, XINGMING, category("animals.stray_dog", default_severity=4))
    listed = await events.stub.ListCategories(
        pb.ListCategoriesRequest(parent=tenancy.tenant_name(XIANGYANG)), metadata=md(XIANGYANG)
    )
    names = {c.code: c.name for c in listed.categories}
    assert names["animals.stray_dog"] == created.name
    assert names["environment.garbage"] == "categories/environment.garbage"
    _, lon, lat = cell_point(grid_index, XINGMING)
    _, lon2, lat2 = cell_point(grid_index, XIANGYANG)
    in_xingming = await events.stub.CreateEvent(
        report(lon, lat, "dog1", category="animals.stray_dog"), metadata=md()
    )
    in_xiangyang = await events.stub.CreateEvent(
        report(lon2, lat2, "dog2", category="animals.stray_dog"), metadata=md()
    )
    assert (in_xingming.severity, in_xiangyang.severity) == (4, 3)


async def test_categories_of_other_towns_are_unknown(events, grid_index):
    await define(
        events,
        "sh/jiading/nanxiang",
        category("animals.stray_dog"),
        configurer("sh/jiading/nanxiang"),
    )
    _, lon, lat = cell_point(grid_index, XINGMING)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await events.stub.CreateEvent(
            report(lon, lat, "dog", category="animals.stray_dog"), metadata=md()
        )
    assert [v.field for v in failure_of(info.value).violations] == ["event.category"]
    assert await events.count_rows() == 0


async def test_defining_needs_the_scope_and_a_good_definition(events):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await define(events, TOWN, category("animals.stray_dog"), md())
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await define(events, XINGMING, category("animals.stray_dog"), configurer(XIANGYANG))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await define(
            events, TOWN, category("Bad Code", default_severity=9, duplicate_radius_meters=5000)
        )
    assert {v.field for v in failure_of(info.value).violations} == {
        "category.code",
        "category.default_severity",
        "category.duplicate_radius_meters",
    }


async def test_definitions_survive_a_restart(events):
    await define(events, TOWN, category("animals.stray_dog", sla_minutes=30))
    reloaded = CategoryCatalog(await events.store.list_categories())
    assert reloaded.get(XINGMING, "animals.stray_dog").sla_minutes == 30
    assert reloaded.get(XINGMING, "environment.garbage") is not None
