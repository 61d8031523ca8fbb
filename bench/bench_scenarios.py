"""Scenarios: installing every shipped scenario on many villages, and planning again.

Figures, one line each with its target:
  1. install: every manifest in scenarios/ applied by the composer to N villages (50;
     3 in quick mode) through the components' gRPC APIs, villages in parallel, the
     scenarios of one village one after another, on the platform's processes as
     `make run` starts them (SQLite stores, the local bus); installs/s and the whole
     time (target: 25 scenarios x 50 villages in under 120 s);
  2. plan: the plan of each scenario for a village that has them all installed (it
     reads the install records and the village's resources of every kind the scenario
     touches, and finds nothing to do), p50/p95 over repeated runs (target < 200 ms);
  3. the same plans made again with the install record written back: applying twice
     changes nothing (checked, not timed).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import command_line, scaled  # noqa: E402  (sets the key ring first)
from devstack.demo_identity import ensure_tenants  # noqa: E402
from devstack.stack import SERVICES, Stack, StackConfig  # noqa: E402
from scenarios.composer import Composer, Manifest, catalog  # noqa: E402

TOWN = "sh/jiading/anting"
VILLAGES = scaled(50, 3)
PARALLEL = 8  # villages installed at once
PLAN_ROUNDS = scaled(20, 3)


def village(n: int) -> str:
    return f"{TOWN}/bench{n:03d}"


async def install_all(composer: Composer, manifests: list[Manifest]) -> tuple[float, int]:
    gate = asyncio.Semaphore(PARALLEL)

    async def one_village(n: int) -> int:
        async with gate:
            for manifest in manifests:
                applied = await composer.apply(village(n), manifest)
                assert applied.state == "complete", applied.plan.render()
            return len(manifests)

    started = time.perf_counter()
    counts = await asyncio.gather(*(one_village(n) for n in range(VILLAGES)))
    return time.perf_counter() - started, sum(counts)


async def plan_times(composer: Composer, manifests: list[Manifest]) -> list[float]:
    seconds: list[float] = []
    for _ in range(PLAN_ROUNDS):
        for manifest in manifests:
            started = time.perf_counter()
            plan = await composer.plan(village(0), manifest)
            seconds.append(time.perf_counter() - started)
            assert plan.empty, plan.render()
    return seconds


async def measure(config: StackConfig) -> None:
    manifests = list(catalog.available().values())
    addresses = {name: config.address(name) for name in SERVICES}
    async with grpc.aio.insecure_channel(addresses["empower"]) as channel:
        # Division codes 310114103300 onwards: the demo's own villages keep 2xx.
        villages = {village(n): (f"Bench {n}", f"310114103{300 + n:03d}") for n in range(VILLAGES)}
        await ensure_tenants(channel, villages)
    async with Composer.connect(addresses, timeout=30) as composer:
        took, installs = await install_all(composer, manifests)
        print(
            f"install: {len(manifests)} scenarios x {VILLAGES} villages = {installs} installs "
            f"in {took:.1f} s ({installs / took:.1f} installs/s; "
            f"target 25 x 50 = 1,250 in < 120 s, here {1250 / (installs / took):.0f} s "
            "at this rate)",
            flush=True,
        )
        seconds = sorted(await plan_times(composer, manifests))
        p50 = statistics.median(seconds) * 1000
        p95 = seconds[int(len(seconds) * 0.95) - 1] * 1000 if len(seconds) > 1 else p50
        print(
            f"plan of an installed scenario: p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
            f"max {seconds[-1] * 1000:.1f} ms over {len(seconds)} plans (target < 200 ms)",
            flush=True,
        )
        again = [await composer.apply(village(0), m) for m in manifests]
        assert all(not a.done for a in again), "applying twice changed something"
        print(f"apply again: {len(again)} scenarios, 0 changes", flush=True)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-scenarios-"))
    try:
        config = StackConfig.on_free_ports(root / "data", log_dir=root / "logs")
        stack = Stack(config)
        stack.ensure_demo_data()
        for name in SERVICES:
            stack.start(name)
        try:
            stack.wait_ready(120, services=SERVICES)
            asyncio.run(measure(config))
        finally:
            stack.stop_all()
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    command_line(__doc__)
    main()
