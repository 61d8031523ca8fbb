"""What authentication, authorisation and rate limiting add to a gateway request.

One process runs the empower service (gRPC on a loopback port, SQLite in a temporary
directory, with a tenant, a staff user and an app) and two gateways on real HTTP
(uvicorn, loopback): one with authentication ON (API key or access token, scope
check, token buckets in the Redis at 127.0.0.1:6379) and one with it turned OFF
(a fixed principal, no limits). The same route, `GET /v1/me`, which answers from
the principal alone, is asked of both, interleaved request by request on one
keep-alive connection each, so the difference of the medians is what the three
checks cost. A second pair does the same on `GET /v1/tenants/{t}/people`, which
also calls the empower service, to show the share of a real call.

Target (issue: identity and gateway security): the added p50 is under 1 ms.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import command_line, scaled  # noqa: E402  (sets the principal key ring first)
from devstack.stack import free_ports  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.security.authenticator import Caller  # noqa: E402
from gateway.settings import GatewaySettings  # noqa: E402
from services.empower.api import build_component  # noqa: E402
from services.empower.config import EmpowerSettings  # noqa: E402
from services.empower.domain.identity import IdentityDirectory  # noqa: E402
from services.empower.domain.roles import ALL_SCOPES  # noqa: E402
from services.empower.wiring import open_empower  # noqa: E402
from services.kit import signing  # noqa: E402
from services.kit.config import ServiceSettings  # noqa: E402
from services.kit.principal import Principal  # noqa: E402
from services.kit.server import start_server  # noqa: E402

REQUESTS = int(os.environ.get("BENCH_AUTH_REQUESTS", scaled("3000", "300")))
WARMUP = scaled(300, 50)
VILLAGE = "sh/jiading/anting/xingming"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BOOT = Principal("services/bench", "sh", kind="service", scopes=ALL_SCOPES)


def _redis_reachable() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


async def _serve(app: object, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
        await asyncio.sleep(0.01)
    return server, task


async def _identities(d: IdentityDirectory) -> tuple[str, str, str]:
    for parent, segment, level, code in (
        ("", "sh", "city", "310000000000"),
        ("sh", "jiading", "district", "310114000000"),
        ("sh/jiading", "anting", "town", "310114103000"),
        ("sh/jiading/anting", "xingming", "village", "310114103201"),
    ):
        await d.create_tenant(BOOT, parent, segment, segment.title(), level, code)
    password = "bench-password-1234"
    await d.create_user(
        BOOT, VILLAGE, "bench.secretary", "Bench", "staff", ("village_secretary",), password
    )
    _, issued = await d.create_app(
        BOOT, VILLAGE, "bench app", ("people:read", "events:read"), 100_000
    )
    tokens = await d.login("bench.secretary", password)
    return issued.api_key, tokens.access_token, password


async def _timed(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    response = await client.get(path, headers=headers)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
    return elapsed


async def _compare(
    on: httpx.AsyncClient, off: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> tuple[float, float]:
    for _ in range(WARMUP):
        await _timed(on, path, headers)
        await _timed(off, path, {})
    with_auth: list[float] = []
    without: list[float] = []
    for _ in range(REQUESTS):
        with_auth.append(await _timed(on, path, headers))
        without.append(await _timed(off, path, {}))
    return statistics.median(with_auth) * 1e3, statistics.median(without) * 1e3


async def main() -> None:
    use_redis = _redis_reachable()
    with tempfile.TemporaryDirectory() as tmp:
        settings = EmpowerSettings(
            grpc_port=0,
            host="127.0.0.1",
            database=Path(tmp) / "empower.sqlite3",
            seal_keys=signing.generate_keys_value("b1"),  # type: ignore[arg-type]
            index_key=base64.b64encode(os.urandom(32)).decode(),  # type: ignore[arg-type]
        )
        opened = await open_empower(settings)
        component = build_component(opened.directory, opened.registry, opened.audit, opened.closers)
        running = await start_server(
            "empower", ServiceSettings(grpc_port=0, host="127.0.0.1"), component
        )
        api_key, token, _ = await _identities(opened.directory)
        address = f"127.0.0.1:{running.port}"
        gateway_settings = GatewaySettings(
            map_address=address,
            events_address=address,
            command_address=address,
            twin_address=address,
            empower_address=address,
            redis_url=REDIS_URL if use_redis else "",
            user_requests_per_minute=1_000_000,
            tenant_requests_per_minute=1_000_000,
        )
        fixed = Caller(
            Principal("apps/bench", VILLAGE, kind="app", scopes=frozenset({"people:read"})),
            None,
        )
        on_port, off_port = free_ports(2)
        servers = [
            await _serve(create_app(gateway_settings), on_port),
            await _serve(create_app(gateway_settings, fixed_caller=fixed), off_port),
        ]
        people = f"/v1/tenants/{VILLAGE.replace('/', '-')}/people?page_size=1"
        try:
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{on_port}") as on,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{off_port}") as off,
            ):
                limits = "Redis token buckets" if use_redis else "local buckets (no Redis)"
                print(f"requests per figure: {REQUESTS} (interleaved on/off), limits: {limits}")
                for label, path, headers in (
                    ("API key     GET /v1/me", "/v1/me", {"X-API-Key": api_key}),
                    ("JWT         GET /v1/me", "/v1/me", {"Authorization": f"Bearer {token}"}),
                    ("API key     GET people", people, {"X-API-Key": api_key}),
                ):
                    p50_on, p50_off = await _compare(on, off, path, headers)
                    added = p50_on - p50_off
                    verdict = "meets" if added < 1.0 else "MISSES"
                    print(
                        f"  {label:<24} p50 auth on {p50_on:6.3f} ms, off {p50_off:6.3f} ms, "
                        f"added {added:6.3f} ms ({verdict} < 1 ms)"
                    )
        finally:
            for server, task in servers:
                server.should_exit = True
                with contextlib.suppress(Exception):
                    await task
            await running.stop()
            await component.close()


if __name__ == "__main__":
    command_line(__doc__)
    asyncio.run(main())
