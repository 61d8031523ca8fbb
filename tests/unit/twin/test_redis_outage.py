"""Redis stopped under steady ingest: every reading is still accepted and read back (from
the store's history), an older one still does not overwrite, and when Redis comes back -
empty, as a restarted Redis without persistence does - the latest state catches up,
including series that got no reading meanwhile.

The outage lasts six of the twin's pauses before knocking on Redis again
(RETRY_AFTER_SECONDS), so readings go in while the pause runs, Redis is knocked on and
found down again several times, and the writes that wait pile up across those knocks: a
longer outage takes the same paths, only more times.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

from devstack.stack import free_port
from grassroots.twin.v1 import twin_service_pb2 as pb
from services.twin.domain.ingest import Columns
from services.twin.store.latest_redis import KEY, RETRY_AFTER_SECONDS, RedisLatest
from tests.conftest import XINGMING
from tests.unit.twin.test_alarm_loop import MD, PARENT, WRITER, make_gauge

OUTAGE_SECONDS = 6 * RETRY_AFTER_SECONDS
ACTIVE = ["gauge-1", "gauge-2"]
QUIET = "gauge-quiet"  # one reading before the outage, none during it


async def redis_server(port: int) -> asyncio.subprocess.Process:
    server = await asyncio.create_subprocess_exec(
        "redis-server",
        *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return server
    raise AssertionError("redis-server did not start")


async def level(twin: Any, entity: str) -> float:
    got = await twin.stub.GetEntity(
        pb.GetEntityRequest(name=f"{PARENT}/entities/{entity}"), metadata=MD
    )
    return float(got.state["level_cm"])


async def test_redis_stopped_ingest_goes_on_and_the_state_catches_up(twin, grid_index):
    for entity in [*ACTIVE, QUIET]:
        await make_gauge(twin, grid_index, entity)
    port = free_port()
    server = await redis_server(port)
    latest = RedisLatest(f"redis://127.0.0.1:{port}/0", twin.parts.store, timeout=0.2)
    twin.hub.latest = latest  # the production arrangement: latest state in this Redis
    hub = twin.hub
    start = int(time.time() * 1000) - 10 * 60_000
    try:
        before = await hub.ingest(
            WRITER, XINGMING, Columns.of([*ACTIVE, QUIET], ["level_cm"] * 3, [5.0] * 3, [start] * 3)
        )
        assert before.accepted_count == 3 and not latest.degraded

        server.kill()
        await server.wait()
        t, value, readings = start, 5.0, 0
        stopped = time.monotonic()
        while time.monotonic() - stopped < OUTAGE_SECONDS:
            t, value = t + 1000, value + 0.5
            got = await hub.ingest(
                WRITER, XINGMING, Columns.of(ACTIVE, ["level_cm"] * 2, [value] * 2, [t] * 2)
            )
            older = await hub.ingest(
                WRITER, XINGMING, Columns.of(ACTIVE[:1], ["level_cm"], [1.0], [t - 500])
            )
            assert (got.accepted_count, older.stale_count) == (2, 1)
            readings += 3
            assert await level(twin, ACTIVE[0]) == value  # read from the store meanwhile
            await asyncio.sleep(0.25)
        # Readings kept going in (two a second at least), and Redis was knocked on again after
        # the pause and found still down more than once.
        assert latest.degraded and readings > 2 * OUTAGE_SECONDS
        assert latest.degraded_calls >= 3, latest.degraded_calls
        assert await level(twin, QUIET) == 5.0

        server = await redis_server(port)  # back, but empty
        # Once the pause before knocking again has passed, a read finds Redis and refills
        # it (polled: a busy machine may take longer than the pause); every read between
        # answers the stored value.
        back_by = time.monotonic() + 15
        while True:
            assert [await level(twin, e) for e in ACTIVE] == [value, value]
            if not latest.degraded or time.monotonic() > back_by:
                break
            await asyncio.sleep(0.2)
        assert not latest.degraded
        stored = await latest.redis.hgetall(KEY)
        assert len(stored) == 3  # the quiet gauge's value is back in Redis too
        assert await level(twin, QUIET) == 5.0
        late = await hub.ingest(
            WRITER, XINGMING, Columns.of([QUIET], ["level_cm"], [2.0], [start - 1])
        )
        assert late.stale_count == 1 and await level(twin, QUIET) == 5.0
    finally:
        server.kill()
        await server.wait()
        await latest.close()
