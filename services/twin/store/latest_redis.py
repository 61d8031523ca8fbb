"""Latest values in Redis, shared by every twin replica; the store stands in while Redis is down.

One hash holds every series' newest value as "time,value,lon,lat". A Lua script writes
a value only when it is newer than the stored one, so replicas and late retries never
move a value backwards. When Redis does not answer, reads come from the store's
history (which every accepted reading reached first) and writes wait in memory; the
first successful call afterwards writes them, so the state catches up.

A Redis that comes back empty (restarted without persistence, replaced, flushed) would
have forgotten every series that got no reading meanwhile, so an entity would show no
value and a late reading would pass for the newest. A marker key says the hash is
filled: at start, after a failure and every few seconds, a replica that finds it missing
fills the hash from the store's history (newer wins, so replicas doing it together, or
readings arriving meanwhile, are safe) and sets it.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.twin.domain.entities import Latest, Point
from services.twin.domain.ports import LatestBatch, TwinStore

log = logging.getLogger(__name__)
KEY = "twin:latest"
FILLED_KEY = "twin:latest:filled"  # present while KEY holds every series' newest value
# Do not knock on a Redis that just failed for this long: ingest stays fast meanwhile.
RETRY_AFTER_SECONDS = 1.0
# How often a replica checks that the hash was not lost without a failed call seen.
FILLED_CHECK_SECONDS = 5.0
_PUT_NEWER = """
local n = 0
for i = 1, #ARGV, 3 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  local newer = true
  if old then
    local t = tonumber(string.match(old, '^[^,]+'))
    if t > tonumber(ARGV[i + 1]) then newer = false end
  end
  if newer then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    n = n + 1
  end
end
return n
"""


def _encode(latest: Latest) -> str:
    point = latest.point
    where = f"{point.longitude!r},{point.latitude!r}" if point else ","
    return f"{latest.observed_ms},{latest.value!r},{where}"


def _decode(raw: bytes | str | None) -> Latest | None:
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    t, v, lon, lat = text.split(",")
    point = Point(float(lon), float(lat)) if lon else None
    return Latest(float(v), int(t), point)


class RedisLatest:
    def __init__(self, url: str, store: TwinStore, *, timeout: float = 0.5) -> None:
        self.redis = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.store = store
        self._script = self.redis.register_script(_PUT_NEWER)
        self._waiting: dict[int, Latest] = {}
        self._down_until = 0.0
        self._check_filled_at = 0.0  # monotonic time of the next marker check; 0: now
        self.degraded_calls = 0
        self.refills = 0

    @property
    def degraded(self) -> bool:
        return bool(self._waiting) or time.monotonic() < self._down_until

    def _failed(self, exc: Exception) -> None:
        if time.monotonic() >= self._down_until:
            log.warning("Redis latest state unavailable, using the store: %s", exc)
        self._down_until = time.monotonic() + RETRY_AFTER_SECONDS
        self._check_filled_at = 0.0  # it may come back empty
        self.degraded_calls += 1

    async def _fill_if_lost(self) -> None:
        """Fill the hash from the store's history when its marker is missing."""
        if await self.redis.exists(FILLED_KEY):
            return
        found = await self.store.latest_of(None)
        if found:
            log.warning("Redis latest state was empty; filling %d series from history", len(found))
            await self._put(found)
        await self.redis.set(FILLED_KEY, 1)
        self.refills += 1

    async def _catch_up(self) -> bool:
        """Write what waited while Redis was down; False if it is still down."""
        now = time.monotonic()
        if now < self._down_until:
            return False
        if now >= self._check_filled_at:
            try:
                await self._fill_if_lost()
            except (RedisError, OSError) as exc:
                self._failed(exc)
                return False
            self._check_filled_at = now + FILLED_CHECK_SECONDS
        if self._waiting:
            waiting = self._waiting
            try:
                await self._put(waiting)
            except (RedisError, OSError) as exc:
                self._failed(exc)
                return False
            for sid, latest in list(waiting.items()):
                if self._waiting.get(sid) is latest:
                    del self._waiting[sid]
        return True

    async def _put(self, items: dict[int, Latest]) -> None:
        args: list[int | str] = []
        for sid, latest in items.items():
            args += [sid, latest.observed_ms, _encode(latest)]
        for start in range(0, len(args), 3 * 5000):
            await self._script(keys=[KEY], args=args[start : start + 3 * 5000])

    async def get_many(self, series_ids: list[int]) -> list[Latest | None]:
        if not series_ids:
            return []
        if await self._catch_up():
            try:
                raw = await self.redis.hmget(KEY, series_ids)
                return [_decode(x) for x in raw]
            except (RedisError, OSError) as exc:
                self._failed(exc)
        found = await self.store.latest_of(series_ids)
        out: list[Latest | None] = []
        for sid in series_ids:
            stored, waiting = found.get(sid), self._waiting.get(sid)
            if waiting is not None and (
                stored is None or waiting.observed_ms >= stored.observed_ms
            ):
                stored = waiting
            out.append(stored)
        return out

    async def times_of(self, series_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        found = await self.get_many(series_ids.tolist())
        return np.fromiter(
            (x.observed_ms if x is not None else -1 for x in found), np.int64, len(found)
        )

    async def put_newer(self, batch: LatestBatch) -> None:
        if not len(batch):
            return
        items = dict(batch.items())
        if await self._catch_up():
            try:
                await self._put(items)
                return
            except (RedisError, OSError) as exc:
                self._failed(exc)
        for sid, latest in items.items():
            old = self._waiting.get(sid)
            if old is None or latest.observed_ms >= old.observed_ms:
                self._waiting[sid] = latest

    async def close(self) -> None:
        await self.redis.aclose()
