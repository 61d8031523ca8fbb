"""Concurrent creates share map calls and commits, but never each other's failures."""

from __future__ import annotations

import asyncio

import grpc

from tests.conftest import XINGMING
from tests.unit.events.test_events_api import cell_point, md, report


async def test_concurrent_creates_each_get_their_own_answer(events, grid_index):
    requests = []
    for i in range(30):
        cell, lon, lat = cell_point(grid_index, XINGMING, i)
        requests.append((cell, report(lon, lat, f"c{i}", category="safety.flooding")))
    outside = report(100.0, 30.0, "far-away")
    reused_first = report(*cell_point(grid_index, XINGMING, 3)[1:], "same-key")
    await events.stub.CreateEvent(reused_first, metadata=md())
    reused = report(*cell_point(grid_index, XINGMING, 4)[1:], "same-key")

    results = await asyncio.gather(
        *(events.stub.CreateEvent(r, metadata=md()) for _, r in requests),
        events.stub.CreateEvent(outside, metadata=md()),
        events.stub.CreateEvent(reused, metadata=md()),
        return_exceptions=True,
    )
    good, bad_location, bad_key = results[:30], results[30], results[31]
    assert all(not isinstance(r, BaseException) for r in good), good
    assert [r.grid_cell for r in good] == [cell for cell, _ in requests]
    assert len({r.name for r in good}) == 30
    assert isinstance(bad_location, grpc.aio.AioRpcError)
    assert bad_location.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(bad_key, grpc.aio.AioRpcError)
    assert bad_key.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await events.count_rows() == 31
