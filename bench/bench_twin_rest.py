"""Single readings over REST through the gateway, load from wrk (target >= 1,500/s).

The platform runs as `make run` runs it (devstack processes: gateway -> twin over gRPC,
SQLite, the demo's rules on, so every reading is evaluated). A device gateway's app
key (`twin:ingest`) posts one reading per request to `:ingestTelemetry`, each to the
next of a few hundred water-level gauges, values under the flooding threshold. wrk
(Debian's `wrk`; `apt-get install wrk`) drives the load from a Lua script beside this
file that checks every answer. Figures: readings/s accepted, latency (p50, p99), CPU
per reading of the gateway and the twin (and wrk's own). Beside them, in the same run
with the same wrk settings, the floor (bench/events_floor.py: a bare FastAPI route
forwarding each body in one grpc.aio call to a bare grpc.aio server): the machine is
shared, so ours as a fraction of the floor is the figure that moves least with its load.

Full mode: 20 s with 64 connections after a 3 s warm-up; quick mode (BENCH_QUICK=1): 2 s
with 16 connections. `--profile` records the gateway and the twin with py-spy during
the run (SVG flame graphs in the working directory).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import QUICK, UNTHROTTLED_GATEWAY_ENV, create_bench_app, scaled  # noqa: E402
from bench.events_floor import Floor  # noqa: E402
from devstack import demo_identity, demo_twin, demo_village  # noqa: E402
from devstack.stack import Stack, StackConfig  # noqa: E402
from grassroots.empower.v1 import empower_service_pb2 as tenant_pb  # noqa: E402
from grassroots.twin.v1 import twin_service_pb2 as pb  # noqa: E402
from grassroots.twin.v1 import twin_service_pb2_grpc as pb_grpc  # noqa: E402

SCRIPT = Path(__file__).resolve().parent / "wrk_twin_ingest.lua"
TENANT_ID = "sh-jiading-anting-xingming"
PARENT = f"tenants/{TENANT_ID}"
GAUGES = scaled(500, 50)
SECONDS = scaled(20.0, 2.0)
WARM_SECONDS = scaled(3.0, 1.0)
CONNECTIONS = scaled(64, 16)
TARGET = 1_500
# Device gateways, one per wrk thread.
APPS = 2
CLK_TCK = os.sysconf("SC_CLK_TCK")
LEVEL_VILLAGE = tenant_pb.Tenant.LEVEL_VILLAGE


@contextlib.contextmanager
def platform(work: Path, demo: Path) -> Iterator[Stack]:
    config = StackConfig.on_free_ports(work / "data", log_dir=work / "logs")
    config.extra_env.update(UNTHROTTLED_GATEWAY_ENV)
    config.data_dir.mkdir(parents=True)
    shutil.copy(demo, config.map_file)
    stack = Stack(config)
    try:
        stack.start_all()
        stack.wait_ready(120)
        stack.install_demo_twin()  # the village's rules, evaluated on every reading
        yield stack
    finally:
        stack.stop_all()


async def prepare(stack: Stack) -> str:
    """The gauges, and the keys (comma-separated) of device gateway apps that may ingest
    (and only that), one per wrk thread."""
    async with grpc.aio.insecure_channel(stack.config.address("twin")) as channel:
        twin = pb_grpc.TwinServiceStub(channel)
        anchor = demo_twin.anchor_of(stack.config.map_file)
        for i in range(GAUGES):
            await twin.CreateEntity(
                pb.CreateEntityRequest(
                    parent=PARENT,
                    entity_id=f"bench-gauge-{i}",
                    entity=pb.Entity(
                        entity_type="WaterLevelGauge",
                        location=demo_twin._place(anchor, (i % 20 * 5.0, i // 20 * 5.0)),
                    ),
                ),
                metadata=demo_twin.INSTALLER.to_metadata(),
            )
    async with grpc.aio.insecure_channel(stack.config.address("empower")) as channel:
        # The town's tree down to the village, without the demo's people (whose password
        # hashes take most of a full identity install).
        tenants = demo_identity._Installer(channel, demo_identity.DemoCredentials(), print)
        for parent, segment, display, level, code in demo_identity.TREE:
            await tenants.tenant(parent, segment, display, level, code)
        village_display, village_code = demo_identity.VILLAGES[demo_twin.VILLAGE]
        await tenants.tenant(
            demo_identity.TOWN, "xingming", village_display, LEVEL_VILLAGE, village_code
        )
    empower = stack.config.address("empower")
    keys = [
        await create_bench_app(empower, PARENT, ["twin:ingest"], "bench device gateway")
        for _ in range(APPS)
    ]
    return ",".join(keys)


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children (a server's workers)."""
    total = 0.0
    pids = [pid]
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                pids.append(int(stat_file.parent.name))
    for each in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def wrk(url: str, key: str, seconds: float) -> tuple[dict[str, str], float]:
    """One wrk run; its BENCH figures and the CPU seconds wrk itself spent."""
    env = dict(os.environ)
    env.update(
        BENCH_PATH=f"/v1/{PARENT}:ingestTelemetry", BENCH_KEY=key, BENCH_ENTITIES=str(GAUGES)
    )
    argv = ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds:g}s"]
    argv += ["--timeout", "10s", "-s", str(SCRIPT), url]
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0 or "BENCH requests=" not in text:
        raise RuntimeError(f"wrk failed: {text[-2000:]}")
    figures = dict(re.findall(r"\b(\w+)=(\S*)", text.split("BENCH first_error=")[0]))
    figures["first_error"] = text.split("BENCH first_error=", 1)[1].strip()
    return figures, usage.ru_utime + usage.ru_stime


def py_spy(pid: int, name: str, seconds: float) -> subprocess.Popen[bytes] | None:
    """Sample a process (and its children) with py-spy for `seconds`, collapsed stacks."""
    tool = shutil.which("py-spy")
    if tool is None:
        print("py-spy is not installed (pip install py-spy); no profile")
        return None
    argv = [tool, "record", "--pid", str(pid), "--duration", f"{int(seconds)}", "--format"]
    argv += ["raw", "--subprocesses", "--rate", "200", "--output", f"twin-rest-{name}.txt"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def where_time_goes(name: str, top: int = 8) -> None:
    """The functions the most samples of a process were in (self time), from py-spy."""
    path = Path(f"twin-rest-{name}.txt")
    if not path.exists():
        return
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        leaf = re.sub(r" \((.*/)?(site-packages/)?", " (", leaf)
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
    print(f"  {name}: {total:,} samples; most self time in")
    for leaf, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {100 * count / total:5.1f}%  {leaf[:110]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway and twin")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install wrk (Debian)")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-twin-rest-") as folder:
        demo = Path(folder) / "demo-village.gpkg"
        demo_village.generate(demo)
        return measure(Path(folder), demo, args.profile)


def measure(work: Path, demo: Path, profile: bool) -> int:
    floor = Floor(work)
    floor.start()
    try:
        with platform(work, demo) as stack:
            key = asyncio.run(prepare(stack))
            url = stack.config.gateway_url
            wrk(url, key, WARM_SECONDS)
            pids = {name: stack.processes[name].pid for name in ("gateway", "twin")}
            spies = [py_spy(pid, name, SECONDS) for name, pid in pids.items()] if profile else []
            before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
            figures, wrk_cpu = wrk(url, key, SECONDS)
            cpu = {name: tree_cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            for spy in spies:
                if spy is not None:
                    spy.wait(60)
        # The floor runs while the platform is stopped, as ours ran while the floor idled.
        floor.wait_ready()
        wrk(floor.url, "", WARM_SECONDS)
        floor_before = {name: tree_cpu_seconds(pid) for name, pid in floor.pids().items()}
        bare, bare_wrk_cpu = wrk(floor.url, "", SECONDS)
        bare_load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        floor_cpu = {
            name: tree_cpu_seconds(pid) - floor_before[name] for name, pid in floor.pids().items()
        }
    finally:
        floor.stop()
    ok, bad = int(figures["ok"]), int(figures["bad"])
    rate = ok / float(figures["seconds"])
    mode = "quick" if QUICK else "full"
    print(
        f"single readings over REST through the gateway ({mode} mode: wrk, 2 threads, "
        f"{CONNECTIONS} connections, {SECONDS:g} s, {GAUGES} gauges, rules on)"
    )
    print(f"{rate:,.0f} readings/s accepted (target >= {TARGET:,}); {ok:,} ok, {bad:,} failed")
    print(
        f"latency p50 {int(figures['p50_us']) / 1000:.1f} ms, "
        f"p99 {int(figures['p99_us']) / 1000:.1f} ms"
    )
    per = max(ok + bad, 1)
    print(
        f"CPU per reading: gateway {1000 * cpu['gateway'] / per:.2f} ms, "
        f"twin {1000 * cpu['twin'] / per:.2f} ms, wrk {1000 * wrk_cpu / per:.3f} ms "
        f"(load average {load} on {os.cpu_count()} CPUs)"
    )
    bare_ok = int(bare["ok"])
    bare_rate = bare_ok / float(bare["seconds"])
    bare_per = max(bare_ok + int(bare["bad"]), 1)
    print(
        f"floor {bare_rate:,.0f} requests/s (p50 {int(bare['p50_us']) / 1000:.1f} ms, "
        f"p99 {int(bare['p99_us']) / 1000:.1f} ms); ours = {rate / max(bare_rate, 1e-9):.0%} "
        f"of the floor; floor CPU per request: "
        + ", ".join(f"{name} {1000 * spent / bare_per:.2f} ms" for name, spent in floor_cpu.items())
        + f", wrk {1000 * bare_wrk_cpu / bare_per:.3f} ms (load average {bare_load})"
    )
    if profile:
        print("py-spy (collapsed stacks in twin-rest-gateway.txt, twin-rest-twin.txt):")
        where_time_goes("gateway")
        where_time_goes("twin")
    if bad:
        print(f"FAILED ANSWERS, first: {figures['first_error']}")
        return 1
    if not QUICK and rate < TARGET:
        print(f"BELOW TARGET: {rate:,.0f} < {TARGET:,} readings/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
