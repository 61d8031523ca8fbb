"""A worker of `process_pool` exits when its service is killed, instead of living on
as an orphan (a spawned worker never sees its work pipe close)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SERVICE = """
import os, sys
from services.kit.workers import process_pool
pool = process_pool(1)
print(pool.submit(os.getpid).result(), flush=True)
sys.stdin.read()  # until the test kills this process
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_worker_exits_when_its_service_is_killed() -> None:
    service = subprocess.Popen(
        [sys.executable, "-c", SERVICE],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert service.stdout is not None
        worker = int(service.stdout.readline())
        assert worker != service.pid and _alive(worker)
        service.send_signal(signal.SIGKILL)
        service.wait(10)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the worker outlived its killed service"
    finally:
        service.kill()


def test_a_worker_ignores_the_terminals_interrupt() -> None:
    """Ctrl-C reaches the whole process group; the service stops its workers itself."""
    probe = """
import os, signal, sys
from services.kit.workers import process_pool
pool = process_pool(1)
print(pool.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN, flush=True)
pool.shutdown()
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "True", done.stderr[-2000:]
