"""Run every benchmark in bench/ and print their figures (`make bench`).

Each benchmark runs as its own process from the repository root, so one that fails
cannot hide behind another; the exit status is non-zero if any failed. With
`BENCH_QUICK=1` every benchmark runs for a few seconds (see bench/common.py); the test
suite runs that mode, so a broken benchmark fails `make test`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def scripts() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def main() -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    results: list[tuple[str, int, float]] = []
    for script in scripts():
        print(f"== {script.stem}", flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env).returncode
        results.append((script.stem, code, time.monotonic() - started))
    print("== summary", flush=True)
    for name, code, seconds in results:
        print(f"{name:<24} {'ok' if code == 0 else f'FAILED (exit {code})':<18} {seconds:6.1f}s")
    print(f"{'total':<24} {'':<18} {sum(s for _, _, s in results):6.1f}s", flush=True)
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
