"""`make run`'s launcher: ready (it prints how long it took), and Ctrl-C stops every process."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]


def test_launcher_reaches_ready_and_stops_cleanly_on_ctrl_c(demo_gpkg, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(demo_gpkg, data / "demo-village.gpkg")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_")}
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack",
            "--free-ports",
            "--data-dir",
            str(data),
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's job is
    )
    try:
        url = edge = None
        assert process.stdout is not None
        for line in process.stdout:
            match = re.search(r"gateway\s+(http://\S+)", line)
            if match:
                url = match.group(1)
            match = re.search(r"edge\s+grpc\s+(\S+)", line)
            if match:
                edge = match.group(1)
            if url and edge:
                break
        installed = ""
        for line in process.stdout:
            if line.startswith("Scenarios installed in both villages:"):
                installed = line
                break
        # `make run` installs the catalog's required scenarios in both demo villages.
        for required in ("citizen-report", "fire-smoke", "lone-elderly", "village-notices"):
            assert required in installed, installed
        assert url, "launcher printed no gateway URL"
        assert edge, "launcher printed no gRPC edge address"
        # A hang detector, not a speed test: the banner prints the time to ready, and
        # the demo installs (identities, history, command, plans, forms, twin) take a
        # minute or more on a busy machine.
        assert time.monotonic() - started < 300
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        with grpc.insecure_channel(edge) as channel:
            # The edge starts last: wait for its port rather than race it.
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=30, wait_for_ready=True
            )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        children = _children_of(process.pid)
        assert len(children) == 7  # five components, the gateway and the gRPC edge
        # Ctrl-C signals the terminal's whole process group: the launcher, every
        # service and their workers (the map's upload decoder) at once.
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(30) == 0
        for pid in children:
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
        said = process.stdout.read() + "".join(
            log.read_text() for log in (tmp_path / "logs").iterdir()
        )
        assert "Traceback" not in said, said[-3000:]
        assert "stopped." in said
    finally:
        if process.poll() is None:
            process.kill()


def _children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True
