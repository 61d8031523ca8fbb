"""The map service's buildings as the address list, over real gRPC to the demo town."""

from __future__ import annotations

import pytest

from services.empower.map_addresses import MapAddresses
from services.kit.errors import DomainError
from tests.conftest import TOWN, XIANGYANG, XINGMING


async def test_the_address_list_holds_every_building_of_the_subtree(map_server):
    source = MapAddresses(map_server.address)
    try:
        book = await source.address_book(TOWN)
        villages = set(book.buildings.values())
        assert villages == {XINGMING, XIANGYANG}
        assert book.buildings["xingming-b0001"] == XINGMING
        assert len(book.buildings) > 1000
        only = await source.address_book(XINGMING)
        assert set(only.buildings.values()) == {XINGMING}
    finally:
        await source.close()


async def test_an_unreachable_map_is_unavailable_not_a_crash():
    source = MapAddresses("127.0.0.1:1", timeout=1.0)
    try:
        with pytest.raises(DomainError) as failed:
            await source.address_book(TOWN)
        assert failed.value.code.name == "UNAVAILABLE"
    finally:
        await source.close()
