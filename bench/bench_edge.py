"""What the gRPC edge adds to a unary call.

The bench process runs the empower service (gRPC on a loopback port, SQLite in a
temporary directory, with a village and an app); the edge runs as its own process
(`python -m gateway.edge`, as deployed: API key, Redis token buckets at
127.0.0.1:6379 when reachable, scope check). The same call,
`EmpowerService.GetTenant`, is made directly with a signed principal and through
the edge with the app's key, interleaved call by call, each on its own channel; the
difference of the medians is what the edge adds. A second, in-process edge with a
fixed caller (no admission; it shares the bench's event loop, so its figure is an
upper bound) shows how much of that is forwarding alone.

Target: the edge adds under 1 ms per unary call (p50).
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import QUICK, command_line  # noqa: E402  (sets the principal key ring first)
from devstack.stack import free_port  # noqa: E402
from gateway.edge.server import start_edge  # noqa: E402
from gateway.edge.settings import EdgeSettings  # noqa: E402
from gateway.security.authenticator import Caller  # noqa: E402
from gateway.settings import GatewaySettings  # noqa: E402
from grassroots.empower.v1 import empower_service_pb2 as pb  # noqa: E402
from grassroots.empower.v1 import empower_service_pb2_grpc as pb_grpc  # noqa: E402
from services.empower.api import build_component  # noqa: E402
from services.empower.config import EmpowerSettings  # noqa: E402
from services.empower.domain.roles import ALL_SCOPES  # noqa: E402
from services.empower.wiring import open_empower  # noqa: E402
from services.kit import signing  # noqa: E402
from services.kit.config import ServiceSettings  # noqa: E402
from services.kit.principal import Principal  # noqa: E402
from services.kit.server import start_server  # noqa: E402

CALLS = int(os.environ.get("BENCH_EDGE_CALLS", "300" if QUICK else "3000"))
WARMUP = 50 if QUICK else 300
VILLAGE = "sh/jiading/anting/xingming"
TENANT_NAME = "tenants/sh-jiading-anting-xingming"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BOOT = Principal("services/bench", "sh", kind="service", scopes=ALL_SCOPES)


def _redis_reachable() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _edge_process(gateway: GatewaySettings, use_redis: bool) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m gateway.edge` on a free port, admitting callers as in production."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_")}
    env[signing.KEYS_VARIABLE] = os.environ[signing.KEYS_VARIABLE]
    env["PYTHONPATH"] = str(ROOT)
    env["GRASSROOTS_EDGE_GRPC_PORT"] = str(port)
    env["GRASSROOTS_EDGE_LOG_LEVEL"] = "WARNING"
    for name, address in gateway.addresses().items():
        env[f"GRASSROOTS_GATEWAY_{name.upper()}_ADDRESS"] = address
    env["GRASSROOTS_GATEWAY_REDIS_URL"] = REDIS_URL if use_redis else ""
    env["GRASSROOTS_GATEWAY_TENANT_REQUESTS_PER_MINUTE"] = "10000000"
    process = subprocess.Popen([sys.executable, "-m", "gateway.edge"], cwd=ROOT, env=env)
    target = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with grpc.insecure_channel(target) as channel:
            try:
                health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
                return process, target
            except grpc.RpcError:
                time.sleep(0.1)
    process.kill()
    raise SystemExit("the edge process did not start")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


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
        for parent, segment, level, code in (
            ("", "sh", "city", "310000000000"),
            ("sh", "jiading", "district", "310114000000"),
            ("sh/jiading", "anting", "town", "310114103000"),
            ("sh/jiading/anting", "xingming", "village", "310114103201"),
        ):
            await opened.directory.create_tenant(BOOT, parent, segment, segment, level, code)
        _, issued = await opened.directory.create_app(
            BOOT, VILLAGE, "bench app", ("empower:read",), 100_000
        )
        address = f"127.0.0.1:{running.port}"
        gateway = GatewaySettings(
            map_address=address,
            events_address=address,
            command_address=address,
            twin_address=address,
            empower_address=address,
            redis_url=REDIS_URL if use_redis else "",
            user_requests_per_minute=10_000_000,
            tenant_requests_per_minute=10_000_000,
        )
        caller = Principal("apps/bench", VILLAGE, kind="app", scopes=frozenset({"empower:read"}))
        full = _edge_process(gateway, use_redis)
        bare = await start_edge(
            EdgeSettings(grpc_port=0, grace_seconds=1), gateway, fixed_caller=Caller(caller, None)
        )
        channels = [
            grpc.aio.insecure_channel(target)
            for target in (address, f"127.0.0.1:{bare.port}", full[1])
        ]
        direct, forward, admitted = (pb_grpc.EmpowerServiceStub(c).GetTenant for c in channels)
        request = pb.GetTenantRequest(name=TENANT_NAME)
        signed = caller.to_metadata()
        keyed = (("x-api-key", issued.api_key),)
        calls = (
            lambda: direct(request, metadata=signed, timeout=5),
            lambda: forward(request, timeout=5),
            lambda: admitted(request, metadata=keyed, timeout=5),
        )
        try:
            for _ in range(WARMUP):
                for call in calls:
                    await call()
            samples: list[list[float]] = [[], [], []]
            for _ in range(CALLS):
                for i, call in enumerate(calls):
                    samples[i].append(await _timed(call))
            cpu_before = _cpu_seconds(full[0].pid)
            for _ in range(CALLS):
                await calls[2]()
            edge_cpu_ms = (_cpu_seconds(full[0].pid) - cpu_before) / CALLS * 1e3
        finally:
            for channel in channels:
                await channel.close()
            full[0].terminate()
            full[0].wait(15)
            await bare.stop()
            await running.stop()
            await component.close()
    p50 = [statistics.median(s) * 1e3 for s in samples]
    limits = "Redis token buckets" if use_redis else "local buckets (no Redis)"
    print(f"calls per figure: {CALLS} (interleaved), limits: {limits}")
    print(f"  direct, signed principal      p50 {p50[0]:6.3f} ms")
    print(f"  edge in-process, no admission p50 {p50[1]:6.3f} ms  (+{p50[1] - p50[0]:.3f} ms)")
    print(f"  edge process, API key        p50 {p50[2]:6.3f} ms  (+{p50[2] - p50[0]:.3f} ms)")
    print(f"  edge process CPU per call     {edge_cpu_ms:6.3f} ms  (whatever the machine's load)")
    print(f"  load average while measuring  {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    added = p50[2] - p50[0]
    verdict = "met" if added < 1.0 else "missed"
    print(f"edge adds {added:.3f} ms per unary call (p50); target < 1 ms: {verdict}")


if __name__ == "__main__":
    command_line(__doc__)
    asyncio.run(main())
