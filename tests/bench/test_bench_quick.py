"""`BENCH_QUICK=1 make bench` in the test suite: every benchmark must still run and
print its figures, so a change that breaks one fails here instead of silently."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack import PORT_SLICE_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
# A figure: a number with a rate or latency unit ("1,706 creates/s", "p50 0.045 ms").
FIGURE = re.compile(r"\d[\d,.]*\s*(?:[a-z ]*/s\b|ms\b)")
# Fourteen benches, several starting a whole platform, two at a time (bench/run.py): about
# 2 minutes on an idle machine.
QUICK_BUDGET_SECONDS = 300.0


@pytest.mark.timeout(600)
def test_every_benchmark_runs_quickly_and_prints_figures() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_")}
    # Ports from this session's slice only (tools/test_halves.py), as its other tests do.
    if PORT_SLICE_VARIABLE in os.environ:
        env[PORT_SLICE_VARIABLE] = os.environ[PORT_SLICE_VARIABLE]
    env["BENCH_QUICK"] = "1"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=590,
    )
    sections = dict(
        (part.split("\n", 1)[0].strip(), part.split("\n", 1)[1] if "\n" in part else "")
        for part in done.stdout.split("== ")[1:]
    )
    names = sorted(p.stem for p in BENCH.glob("bench_*.py"))
    assert names and set(names) <= set(sections), f"not run: {set(names) - set(sections)}"
    summary = sections["summary"]
    for name in names:
        row = re.search(rf"^{name}\s+(\S+).*?([\d.]+)s$", summary, re.M)
        assert row, f"{name} missing from the summary:\n{summary}"
        assert row[1] == "ok", f"{name} failed:\n{sections[name][-3000:]}\n{done.stderr[-3000:]}"
        assert FIGURE.search(sections[name]), f"{name} printed no figures:\n{sections[name]}"
    assert done.returncode == 0, done.stderr[-3000:]
    total = float(re.search(r"^total\s+([\d.]+)s$", summary, re.M)[1])  # type: ignore[index]
    # The budget holds on an idle 2-CPU machine; a busy one gets twice as long.
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    assert total < QUICK_BUDGET_SECONDS * (2 if load > 1.5 else 1), summary
