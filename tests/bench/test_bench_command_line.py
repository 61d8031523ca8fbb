"""A benchmark takes minutes, so its command line is checked before anything starts:
`--help` prints what it measures, and an option it does not know is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [*sorted((ROOT / "bench").glob("bench_*.py")), ROOT / "bench" / "run.py"]


def run_all(option: str, scripts: list[Path]) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each script with `option`, side by side (each only imports and parses)."""
    started = {
        script.name: subprocess.Popen(
            [sys.executable, str(script), option],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script in scripts
    }
    done = {}
    for name, child in started.items():
        out, err = child.communicate(timeout=120)
        done[name] = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    return done


def test_help_prints_what_the_benchmark_measures_and_starts_nothing() -> None:
    helped = run_all("--help", [ROOT / "bench" / "bench_events.py", ROOT / "bench" / "run.py"])
    for name, done in helped.items():
        assert done.returncode == 0, (name, done.stderr[-500:])
        assert done.stdout.startswith("usage:"), (name, done.stdout[:200])
        assert "machine at start" not in done.stdout, name  # no run began
    assert "wrk: the W figures alone" in " ".join(helped["bench_events.py"].stdout.split())
    assert "Run every benchmark" in helped["run.py"].stdout


def test_an_unknown_option_is_refused_before_a_run() -> None:
    for name, done in run_all("--quick", SCRIPTS).items():
        assert done.returncode == 2, (name, done.returncode, done.stdout[-300:])
        assert "unrecognized arguments: --quick" in done.stderr, (name, done.stderr[-300:])
