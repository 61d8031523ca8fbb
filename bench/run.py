"""Run every benchmark in bench/ and print their figures (`make bench`).

Each benchmark runs as its own process from the repository root, so one that fails
cannot hide behind another; the exit status is non-zero if any failed. With
`BENCH_QUICK=1` every benchmark runs for a few seconds (see bench/common.py); the test
suite runs that mode, so a broken benchmark fails `make test`.

Full runs go one at a time: a benchmark's figures must not pay for another's load.
Quick runs check that every benchmark still works, not what it measures, so they go
BENCH_JOBS at a time (2 by default), longest first: most of a quick run is waiting for
a platform to start. Each job picks ports from a slice of its own (the slice this
process was given, if any, cut in BENCH_JOBS), and a benchmark's output is printed
whole, under its name, when it ends.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from devstack.stack import PORT_SLICE_VARIABLE  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
# Quick runs, longest first so the jobs end together (seconds on an idle 2-CPU machine).
QUICK_SECONDS = {
    "bench_events": 47,
    "bench_twin_rest": 29,
    "bench_ogc_items": 28,
    "bench_command": 27,
    "bench_twin_mqtt": 21,
    "bench_scenarios": 15,
    "bench_twin": 13,
    "bench_auth": 12,
}


def scripts() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def port_slice(job: int, jobs: int) -> str:
    """Slice `job` of `jobs` inside this process's own slice (`k/n`, or all ports)."""
    given = os.environ.get(PORT_SLICE_VARIABLE, "") or "0/1"
    index, _, parts = given.partition("/")
    return f"{int(index) * jobs + job}/{int(parts) * jobs}"


def main() -> int:
    # No options: `--help` prints the docstring, anything else is refused before a run of an hour.
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    jobs = max(1, int(os.environ.get("BENCH_JOBS", "2"))) if QUICK else 1
    order = scripts()
    if jobs > 1:
        order.sort(key=lambda script: -QUICK_SECONDS.get(script.stem, 0))
    results: dict[str, tuple[int, float]] = {}
    free = list(range(jobs))  # port slices not in use
    lock = threading.Lock()
    started = time.monotonic()

    def run(script: Path) -> None:
        with lock:
            job = free.pop()
        begun, code = time.monotonic(), -1
        try:
            if jobs == 1:
                print(f"== {script.stem}", flush=True)
                code = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env).returncode
            else:
                own = {**env, PORT_SLICE_VARIABLE: port_slice(job, jobs)}
                done = subprocess.run(
                    [sys.executable, str(script)], cwd=ROOT, env=own, capture_output=True
                )
                code = done.returncode
                with lock:
                    sys.stdout.buffer.write(f"== {script.stem}\n".encode() + done.stdout)
                    sys.stdout.flush()
                    sys.stderr.buffer.write(done.stderr)
                    sys.stderr.flush()
        finally:
            with lock:
                results[script.stem] = (code, time.monotonic() - begun)
                free.append(job)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(run, order))
    print("== summary", flush=True)
    for script in scripts():
        code, seconds = results[script.stem]
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"{script.stem:<24} {status:<18} {seconds:6.1f}s")
    # The wall time: with several jobs, less than the sum of the lines above.
    print(f"{'total':<24} {'':<18} {time.monotonic() - started:6.1f}s", flush=True)
    return 0 if all(code == 0 for code, _ in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
