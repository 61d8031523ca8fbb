"""Driving wrk (a C load generator) from a benchmark, and reading back what it saw.

A Python load generator on the same two CPUs spends more CPU per request than some of
the services it measures; wrk spends a few percent of that. The Lua script beside this
module builds each request (fresh keys, walking report places) and checks each answer;
its `done` prints `BENCH ...` lines parsed here. wrk's own CPU time comes from the
kernel's accounting of the child (wait4), so it is reported like every other process.

wrk is Debian's `wrk` package; `python tools/ensure_services.py` (run by `make test`)
installs it as root. A benchmark calls `missing()` first and prints why it skips.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parent / "wrk_events.lua"
SCHEDULE_LEAD_SECONDS = 3.0  # wrk starts its threads (each loads the places) meanwhile
SCHEDULE_GRACE_SECONDS = 5.0  # after the schedule: the last answers may still arrive
HOW_TO_INSTALL = (
    "wrk is not installed: apt-get install wrk (Debian), or run "
    "`python tools/ensure_services.py` as root, which `make test` does"
)


def missing() -> str:
    """Why wrk cannot run here, or "" when it can."""
    return "" if shutil.which("wrk") else HOW_TO_INSTALL


@dataclass
class WrkRun:
    """One wrk run: answers checked, its latency distribution and its own CPU time."""

    requests: int
    seconds: float
    ok: int
    duplicates: int
    errors: int
    first_error: str
    latency_ms: dict[str, float]  # p50, p90, p99, max as wrk measured (from each send)
    from_schedule_ms: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    output: str = ""
    scheduled: int = 0  # with a rate: the requests the schedule holds

    @property
    def rate(self) -> float:
        """Answers per second that passed every check."""
        return self.ok / self.seconds if self.seconds else 0.0

    def latency(self) -> str:
        p = self.latency_ms
        return f"p50 {p['p50']:.1f} ms, p90 {p['p90']:.1f} ms, p99 {p['p99']:.1f} ms"


def run(
    url: str,
    *,
    mode: str,
    path: str,
    seconds: float,
    threads: int,
    connections: int,
    api_key: str = "",
    tag: str = "wrk",
    places: Path | None = None,
    ids: Path | None = None,
    check: bool = True,
    rate: float | None = None,
    first: int = 0,
    lead: float = SCHEDULE_LEAD_SECONDS,
    grace: float = SCHEDULE_GRACE_SECONDS,
) -> WrkRun:
    """Run wrk against `url` + `path` (see wrk_events.lua for the modes)."""
    env = dict(os.environ)
    env.update(
        BENCH_MODE=mode,
        BENCH_PATH=path,
        BENCH_KEY=api_key,
        BENCH_TAG=tag,
        BENCH_CHECK="1" if check else "0",
        BENCH_THREADS=str(threads),
        BENCH_SLOTS=str(places or ""),
        BENCH_IDS=str(ids or ""),
        BENCH_FIRST=str(first),
    )
    extra = 0.0
    if rate is not None:
        # One schedule for every thread: it starts once wrk has had time to start them
        # all and ends `seconds` later; the run then waits a grace for the last answers.
        extra = lead + grace
        start = time.monotonic() + lead
        start_us, end_us = int(start * 1e6), int((start + seconds) * 1e6)
        env["BENCH_RATE"] = str(rate)
        env["BENCH_START_US"] = str(start_us)
        env["BENCH_END_US"] = str(end_us)
    argv = [
        "wrk",
        *("-t", str(threads), "-c", str(connections), "-d", f"{math.ceil(seconds + extra)}s"),
        *("--timeout", "10s", "-s", str(SCRIPT), url),
    ]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        problems = err.read().decode(errors="replace")
    if child.returncode != 0 or "BENCH requests=" not in text:
        raise RuntimeError(f"wrk failed ({child.returncode}): {problems[-2000:]}{text[-2000:]}")
    run = parse(text, usage.ru_utime + usage.ru_stime)
    if rate is not None:
        run.scheduled = slots_scheduled(rate, threads, start_us, end_us)
    return run


def slots_scheduled(rate: float, threads: int, start_us: int, end_us: int) -> int:
    """The sends wrk_events.lua's schedule holds, counted as the script steps through it
    (each thread from its offset, one interval at a time, while before the end): about
    rate x seconds, one more where the offsets round up."""
    interval_us = 1000000 * threads / rate
    total = 0
    for number in range(threads):
        next_us = start_us + interval_us * number / threads
        while next_us < end_us:
            total += 1
            next_us += interval_us
    return total


def parse(text: str, cpu_seconds: float) -> WrkRun:
    def value(name: str) -> str:
        found = re.search(rf"\b{name}=(\S*)", text)
        return found[1] if found else ""

    first = re.search(r"^BENCH first_error=(.*)$", text, re.M)
    schedule = re.search(r"^BENCH schedule_us=(.*)$", text, re.M)
    return WrkRun(
        requests=int(value("requests")),
        seconds=float(value("seconds")),
        ok=int(value("ok")),
        duplicates=int(value("duplicates")),
        errors=int(value("errors")),
        first_error=first[1].strip() if first else "",
        latency_ms={p: int(value(f"{p}_us")) / 1000 for p in ("p50", "p90", "p99", "max")},
        from_schedule_ms=[int(v) / 1000 for v in (schedule[1].split() if schedule else [])],
        cpu_seconds=cpu_seconds,
        output=text,
    )


def schedule_percentiles(values: list[float], unanswered: int) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max from the scheduled send time; unanswered count as inf."""
    data = np.concatenate([np.asarray(values, dtype=float), np.full(unanswered, np.inf)])
    if not len(data):
        return {}
    marks = np.percentile(data, [50, 90, 99, 99.9], method="inverted_cdf")
    return dict(zip(("p50", "p90", "p99", "p99.9"), map(float, marks), strict=True)) | {
        "max": float(data.max())
    }
