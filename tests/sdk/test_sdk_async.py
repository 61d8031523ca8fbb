"""The async client against a running platform: a secretary signs in, reports a fire
hazard, follows it on the stream and reads the task command made for it."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import XINGMING, XINGMING_ID, Platform
from grassroots_sdk import AsyncClient, BadRequest, Unauthenticated


async def test_sign_in_report_stream_and_task(platform: Platform) -> None:
    async with AsyncClient(
        platform.url,
        username="xingming.secretary",
        password=platform.password("xingming.secretary"),
    ) as client:
        assert await client.tenant() == XINGMING_ID
        stream = await client.events.stream()  # connected: the report below is on it
        event = await client.events.create(
            "safety.ebike_charging", "E-bike charging in the stairwell", 121.1605, 31.2905
        )
        changes = aiter(stream)
        change = await asyncio.wait_for(anext(changes), 60)
        while change.event.id != event.id:
            change = await asyncio.wait_for(anext(changes), 60)
        assert change.type == "event.reported" and change.event.grid_cell == event.grid_cell
        stream.close()

        task = await client.tasks.for_event(event, wait=30)
        assert task is not None and task.event == event.name
        assert task.category == "safety.ebike_charging" and task.village == XINGMING
        assert task.routing.explanation

        session = client.session
        assert session is not None
        session.expires_at = time.monotonic()  # the next calls refresh, one at a time
        tasks = await asyncio.gather(*(client.tasks.get(task.id) for _ in range(5)))
        assert {t.id for t in tasks} == {task.id}
        assert session.refreshes == 1  # five calls, one refresh: a refresh token works once


async def test_async_pages_and_errors(platform: Platform) -> None:
    async with AsyncClient(platform.url, api_key=platform.village_key) as client:
        for n in range(3):
            await client.events.create("roads.damage", f"Async page {n}", 121.159, 31.289)
        seen = [e.id async for e in client.events.iterate(page_size=1, q="Async page")]
        assert len(seen) == len(set(seen)) >= 3
        with pytest.raises(BadRequest) as bad:
            await client.events.create("roads.damage", "", 121.159, 31.289)
    assert bad.value.field == "description" and bad.value.request_id

    async with AsyncClient(platform.url, api_key="grk_nobody_nothing") as stranger:
        with pytest.raises(Unauthenticated) as refused:
            await stranger.me()
    assert refused.value.status == 401
