"""Token-bucket rate limits per app (or user) and per tenant, shared by every gateway replica.

Both buckets live in Redis and are checked and charged by one Lua script, so two
replicas can never both spend the last token, and a request refused by the tenant
bucket does not spend the app's token. The script reads the clock from Redis
(`TIME`), so replicas with drifting clocks still agree.

When Redis does not answer, the gateway falls back to the same buckets kept in
process memory for a short while (`retry_after_outage_seconds`) before it tries
Redis again: limits get looser by the number of replicas during an outage, but they
never disappear and requests are never refused because the limiter is down.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

log = logging.getLogger("grassroots.gateway.ratelimit")

# KEYS: bucket keys. ARGV: cost, then per bucket: capacity, tokens per millisecond.
# Returns {allowed (0/1), milliseconds until the request would be allowed, tokens left}.
_SCRIPT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local cost = tonumber(ARGV[1])
local wait = 0
local left = -1
local state = {}
for i = 1, #KEYS do
  local capacity = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local stored = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = tonumber(stored[1])
  local ts = tonumber(stored[2])
  if tokens == nil then tokens = capacity; ts = now end
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
  state[i] = tokens
  if tokens < cost then
    wait = math.max(wait, math.ceil((cost - tokens) / rate))
  end
  if left < 0 or tokens - cost < left then left = tokens - cost end
end
if wait > 0 then return {0, wait, 0} end
for i = 1, #KEYS do
  local capacity = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  redis.call('HSET', KEYS[i], 'tokens', tostring(state[i] - cost), 'ts', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil(capacity / rate) + 1000)
end
return {1, 0, math.floor(left)}
"""


@dataclass(frozen=True)
class Limit:
    """A bucket: `per_minute` steady rate, bursts of up to `burst` requests."""

    key: str
    per_minute: float
    burst: int

    @classmethod
    def per_minute_with_burst(cls, key: str, per_minute: int) -> Limit:
        """Bursts of ten seconds' worth, at least five requests."""
        return cls(key, per_minute, max(5, math.ceil(per_minute / 6)))

    @classmethod
    def per_hour(cls, key: str, per_hour: int) -> Limit:
        """At most `per_hour` in any hour: the whole hour's worth may come at once."""
        return cls(key, per_hour / 60.0, per_hour)

    @property
    def per_ms(self) -> float:
        return self.per_minute / 60_000.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: int = 0
    remaining: int = 0
    degraded: bool = False


class LocalBuckets:
    """The same buckets in process memory: the fallback while Redis is away."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._state: dict[str, tuple[float, float]] = {}
        self._max_keys = max_keys

    def check(self, limits: tuple[Limit, ...], cost: int = 1) -> Decision:
        now = time.monotonic() * 1000
        tokens_now: list[float] = []
        wait = 0.0
        for limit in limits:
            tokens, ts = self._state.get(limit.key, (float(limit.burst), now))
            tokens = min(limit.burst, tokens + (now - ts) * limit.per_ms)
            tokens_now.append(tokens)
            if tokens < cost:
                wait = max(wait, (cost - tokens) / limit.per_ms)
        if wait > 0:
            return Decision(False, max(1, math.ceil(wait / 1000)), 0, degraded=True)
        if len(self._state) > self._max_keys:
            self._state.clear()
        for limit, tokens in zip(limits, tokens_now, strict=True):
            self._state[limit.key] = (tokens - cost, now)
        remaining = min(int(t - cost) for t in tokens_now)
        return Decision(True, 0, remaining, degraded=True)


class RateLimiter:
    """Checks and charges several buckets at once; Redis first, memory while it is down."""

    def __init__(
        self,
        redis: Redis | None,
        *,
        prefix: str = "grassroots:rl:",
        retry_after_outage_seconds: float = 1.0,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.local = LocalBuckets()
        self._sha: str | None = None
        self._down_until = 0.0
        self.retry_after_outage_seconds = retry_after_outage_seconds

    async def check(self, *limits: Limit, cost: int = 1) -> Decision:
        if self.redis is None or time.monotonic() < self._down_until:
            return self.local.check(limits, cost)
        keys = [self.prefix + limit.key for limit in limits]
        args: list[float | int] = [cost]
        for limit in limits:
            args.extend((limit.burst, limit.per_ms))
        try:
            result = await self._run(keys, args)
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + self.retry_after_outage_seconds
            log.warning("rate limits fall back to local buckets: %s", type(exc).__name__)
            return self.local.check(limits, cost)
        allowed, wait_ms, remaining = (int(v) for v in result)
        if allowed:
            return Decision(True, 0, remaining)
        return Decision(False, max(1, math.ceil(wait_ms / 1000)), 0)

    async def _run(self, keys: list[str], args: list[float | int]) -> list[int]:
        assert self.redis is not None
        if self._sha is None:
            self._sha = str(await self.redis.script_load(_SCRIPT))
        try:
            return await self.redis.evalsha(self._sha, len(keys), *keys, *args)  # type: ignore[no-any-return]
        except NoScriptError:
            self._sha = str(await self.redis.script_load(_SCRIPT))
            return await self.redis.evalsha(self._sha, len(keys), *keys, *args)  # type: ignore[no-any-return]

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
