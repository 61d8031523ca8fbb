"""`make test`: the suite as two pytest sessions side by side, one per core.

Most tests wait on processes they start (services, a browser, a stack), so one session
keeps about one core busy. Two sessions halve the wall time without a plugin that
would have to know which suites share a platform: each half runs whole folders, so a
suite's session-wide platform (security, scenarios, SDK) starts once, in one half.
The halves never meet: each has its own pytest temporary folder, its own slice of the
port range `devstack.stack.free_ports` picks from, its own PostgreSQL database (made
per session), and the Redis database the twin suite flushes is used by one half only.

`python -m tools.test_halves [pytest args]` passes the args to both halves; the first
half prints as it runs, the second half's output follows, and the exit status is the
worse of the two (pytest's 5, nothing collected, counts as a failure too).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devstack.stack import PORT_SLICE_VARIABLE

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
# The suites that start whole platforms; the other half runs everything else (so a new
# folder of tests is never left out). Balanced by their run times: the quick benchmarks
# came over once the platform suites got shorter. (The scenarios cannot: their conftest
# and the SDK suite's are both imported as `conftest`, so one session holds one of them.)
FIRST_HALF = ("integration", "security", "browser", "sdk", "contract", "bench")


def halves() -> list[list[str]]:
    """The two halves' pytest arguments: folders for the first, the rest by --ignore."""
    first = [str(TESTS / name) for name in FIRST_HALF]
    missing = [path for path in first if not Path(path).is_dir()]
    if missing:
        raise SystemExit(f"test folders named in tools/test_halves.py are gone: {missing}")
    rest = [str(TESTS), *(f"--ignore={path}" for path in first)]
    return [first, rest]


def main(extra: list[str]) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="grassroots-tests-") as scratch:
        print(f"running the suite in two halves: {', '.join(FIRST_HALF)} | the rest", flush=True)
        second_log = Path(scratch) / "second-half.log"
        processes = []
        for number, paths in enumerate(halves()):
            env = {**os.environ, PORT_SLICE_VARIABLE: f"{number}/2"}
            command = [
                sys.executable,
                "-m",
                "pytest",
                f"--basetemp={Path(scratch) / f'tmp-{number + 1}'}",
                *paths,
                *extra,
            ]
            # The first half prints as it goes; the second's output follows it.
            with contextlib.ExitStack() as files:
                out = None if number == 0 else files.enter_context(second_log.open("wb"))
                processes.append(
                    subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
                )
        try:
            codes = [process.wait() for process in processes]
        finally:  # Ctrl-C: stop both halves, not only the one in the foreground
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait()
        print(f"\n===== second half: the rest (exit {codes[1]}) =====")
        sys.stdout.flush()
        sys.stdout.buffer.write(second_log.read_bytes())
        sys.stdout.flush()
    minutes = (time.monotonic() - started) / 60
    print(f"\nboth halves done in {minutes:.1f} min; exit codes {codes}", flush=True)
    return max(codes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
