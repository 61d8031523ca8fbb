"""The tenant tree: who may grow it, and which nodes each caller sees."""

from __future__ import annotations

import pytest

from services.empower.domain.model import Level
from services.kit.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied

from .conftest import (
    CITY,
    DISTRICT,
    GRID,
    T0,
    TOWN,
    XIANGYANG,
    XINGMING,
    bootstrap,
    staff,
)


async def test_only_the_platform_creates_a_root_city(directory):
    admin = staff(CITY, "district_admin")
    with pytest.raises(PermissionDenied):
        await directory.create_tenant(admin, "", "bj", "Beijing", "city", "110000")
    with pytest.raises(InvalidArgument) as info:
        await directory.create_tenant(bootstrap(), "", "bj", "Beijing", "district", "110000")
    assert info.value.violations[0].field == "level"
    city = await directory.create_tenant(bootstrap(), "", "bj", "Beijing", "city", "110000")
    assert (city.path, city.level, city.name, city.parent) == ("bj", Level.CITY, "tenants/bj", "")
    assert city.create_time == T0
    assert await directory.get_tenant(staff("bj", "district_auditor"), "bj") == city


async def test_a_child_is_exactly_one_level_down(tree):
    root = bootstrap()
    with pytest.raises(InvalidArgument) as info:
        await tree.create_tenant(root, CITY, "minhang", "Minhang", Level.TOWN, "310112")
    assert info.value.violations[0].field == "level"
    with pytest.raises(InvalidArgument) as info:
        await tree.create_tenant(root, GRID, "x", "Below a grid", Level.GRID, "x")
    assert info.value.violations[0].field == "level"
    with pytest.raises(InvalidArgument) as info:
        await tree.create_tenant(root, CITY, "minhang", "Minhang", "borough", "310112")
    assert info.value.violations[0].field == "level"


@pytest.mark.parametrize(
    ("segment", "level", "code", "field"),
    [
        ("g02", "grid", "", "admin_code"),
        ("hongqiao", "village", "31011", "admin_code"),
        ("hongqiao", "village", "3101141022031", "admin_code"),
        ("hongqiao", "village", "31011410220a", "admin_code"),
        ("Hong-Qiao", "village", "310114102203", "segment"),
        ("", "village", "310114102203", "segment"),
    ],
)
async def test_bad_input_names_the_field(tree, segment, level, code, field):
    parent = XINGMING if level == "grid" else TOWN
    with pytest.raises(InvalidArgument) as info:
        await tree.create_tenant(bootstrap(), parent, segment, "Name", level, code)
    assert info.value.violations[0].field == field


async def test_grid_codes_need_not_be_digits_and_names_must_not_be_empty(tree):
    grid = await tree.create_tenant(bootstrap(), XINGMING, "g02", "Grid 2", "grid", "xm-g02")
    assert grid.admin_code == "xm-g02"
    with pytest.raises(InvalidArgument) as info:
        await tree.create_tenant(bootstrap(), XINGMING, "g03", "  ", "grid", "xm-g03")
    assert info.value.violations[0].field == "display_name"


async def test_a_path_is_created_once(tree):
    with pytest.raises(AlreadyExists):
        await tree.create_tenant(bootstrap(), TOWN, "xingming", "Again", "village", "310114102201")


async def test_growing_the_tree_needs_the_scope_and_the_subtree(tree):
    officer = staff(TOWN, "town_officer")
    with pytest.raises(PermissionDenied):
        await tree.create_tenant(officer, TOWN, "hongqiao", "Hongqiao", "village", "310114102203")
    admin = staff(XIANGYANG, "district_admin")
    # Another village's node: as if it did not exist.
    with pytest.raises(NotFound):
        await tree.create_tenant(admin, XINGMING, "g02", "Grid 2", "grid", "xm-g02")
    # The caller's own town is visible, but not theirs to grow.
    with pytest.raises(PermissionDenied):
        await tree.create_tenant(admin, TOWN, "hongqiao", "Hongqiao", "village", "310114102203")
    grid = await tree.create_tenant(admin, XIANGYANG, "g01", "Grid 1", "grid", "xy-g01")
    assert grid.path == XIANGYANG + "/g01"
    with pytest.raises(NotFound):
        await tree.create_tenant(admin, XIANGYANG + "/nowhere", "g01", "G", "grid", "x")


async def test_a_village_sees_itself_its_subtree_and_the_levels_above(tree):
    village = staff(XINGMING, "grid_worker")
    for path in (CITY, DISTRICT, TOWN, XINGMING, GRID):
        assert (await tree.get_tenant(village, path)).path == path
    town = await tree.get_tenant(village, TOWN)
    assert (town.display_name, town.level, town.admin_code) == ("Anting", Level.TOWN, "310114102")
    for hidden in (XIANGYANG, TOWN + "/nowhere", "bj"):
        with pytest.raises(NotFound):
            await tree.get_tenant(village, hidden)
    with pytest.raises(InvalidArgument) as info:
        await tree.get_tenant(village, "sh//x")
    assert info.value.violations[0].field == "path"


async def test_children_are_listed_as_far_as_the_caller_sees(tree):
    officer = staff(TOWN, "town_officer")
    children, token = await tree.list_tenants(officer, TOWN)
    assert [t.path for t in children] == [XIANGYANG, XINGMING]
    assert token == ""
    # Seen from a village, its town has one child: the village itself.
    village = staff(XINGMING, "grid_worker")
    children, _ = await tree.list_tenants(village, TOWN)
    assert [t.path for t in children] == [XINGMING]
    roots, _ = await tree.list_tenants(village, "")
    assert [t.path for t in roots] == [CITY]
    with pytest.raises(NotFound):
        await tree.list_tenants(village, XIANGYANG)


async def test_children_page_by_path(tree):
    admin = staff(CITY, "district_admin")
    for segment in ("a1", "b2", "c3"):
        await tree.create_tenant(admin, TOWN, segment, segment, "village", "310114102209")
    seen, token = [], ""
    while True:
        page, token = await tree.list_tenants(admin, TOWN, page_size=2, page_token=token)
        assert len(page) <= 2
        seen.extend(t.path for t in page)
        if not token:
            break
    assert seen == [f"{TOWN}/{s}" for s in ("a1", "b2", "c3", "xiangyang", "xingming")]
    _, first_token = await tree.list_tenants(admin, TOWN, page_size=2)
    with pytest.raises(InvalidArgument) as info:
        await tree.list_tenants(admin, DISTRICT, page_size=2, page_token=first_token)
    assert info.value.violations[0].field == "page_token"
