"""Where a create's (or read's) CPU goes: py-spy samples the gateway and the events service
while wrk drives them as bench_events.py's W1/W2 does, and this prints the heaviest frames.

    python bench/profile_events.py [create|get] [seconds] [folder to keep the raw stacks in]

py-spy is on PyPI (`pip install py-spy`, a binary; it needs ptrace, so root or
CAP_SYS_PTRACE). Not a benchmark: bench/run.py runs bench_*.py only. Prints, per process,
the share of samples whose stack passes through each frame (inclusive) and ends in it (self).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench import bench_events as be  # noqa: E402
from bench import wrk_driver  # noqa: E402

TOP = 40
# "function (/path/to/file.py:123)" -> "function (file.py)": one entry per function
FRAME = re.compile(r"^(.*?) \((?:.*/)?([^/:]+)(?::\d+)?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or next(
        (str(p) for p in (Path(sys.executable).parent / "py-spy",) if p.exists()), None
    )
    if found is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            py_spy(),
            *("record", "--pid", str(pid), "--duration", str(int(seconds))),
            *("--rate", "250", "--format", "raw", "--nonblocking", "--threads"),
            *("--output", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summary(raw: Path) -> str:
    """Inclusive and self shares of frames in py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [FRAME.sub(r"\1 (\2)", f) for f in stack.split(";")[1:]]
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    lines = [f"{total} samples"]
    lines.append("inclusive:")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(TOP)]
    lines.append("self:")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(TOP)]
    return "\n".join(lines)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "create"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 15.0
    with tempfile.TemporaryDirectory(prefix="profile-events-") as tmp:
        platform = be.Platform(Path(tmp))
        try:
            platform.start("profile")
            slots = be.make_slots(platform.config.map_file)
            places = be.write_places(slots, Path(tmp) / "places.csv")
            key = platform.headers["X-API-Key"]
            be.settle_sync(platform, be.Reports(slots, "settle"))
            settings = {
                "mode": "create",
                "path": be.EVENTS,
                "api_key": key,
                "places": places,
                "threads": be.WRK_THREADS,
                "connections": be.WRK_CONNECTIONS,
            }
            if mode == "get":
                wrk_driver.run(
                    platform.config.gateway_url,
                    tag="fill",
                    seconds=5,
                    **settings,  # type: ignore[arg-type]
                )
                settings.update(mode="get", ids=be.write_ids(platform.database, Path(tmp) / "i"))
            pids = platform.pids()
            outputs = {name: Path(tmp) / f"{name}.txt" for name in ("gateway", "events", "map")}
            recorders = [record(pids[name], seconds, out) for name, out in outputs.items()]
            result: list[wrk_driver.WrkRun] = []
            runner = threading.Thread(
                target=lambda: result.append(
                    wrk_driver.run(
                        platform.config.gateway_url,
                        tag="profile",
                        seconds=seconds + 1,
                        **settings,  # type: ignore[arg-type]
                    )
                )
            )
            runner.start()
            for recorder in recorders:
                recorder.wait()
            runner.join()
            run = result[0]
            print(f"{mode}: {run.rate:,.0f}/s, {run.latency()}, {run.errors} errors")
            keep = Path(sys.argv[3]) if len(sys.argv) > 3 else None
            for name, out in outputs.items():
                print(f"== {name}")
                print(summary(out) if out.exists() else "(no samples)")
                if keep is not None and out.exists():
                    keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(out, keep / f"{mode}-{name}.txt")
        finally:
            platform.stop()


if __name__ == "__main__":
    main()
