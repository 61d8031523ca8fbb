"""docs/sdk.md's tutorial script runs as written against a running platform, and is
still at most 30 lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import SDK, Platform

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def tutorial() -> str:
    section = DOC.read_text().split("## Your own scenario in 30 lines", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "docs/sdk.md's tutorial has no python block"
    return found.group(1)


def test_the_tutorial_is_30_lines() -> None:
    assert len(tutorial().strip().splitlines()) <= 30


def test_the_tutorial_reports_watches_and_finds_its_task(
    platform: Platform, tmp_path: Path
) -> None:
    script = tmp_path / "my_scenario.py"
    script.write_text(tutorial())
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_")}
    env |= {
        "GRASSROOTS_URL": platform.url,
        "GRASSROOTS_USERNAME": "xingming.secretary",
        "GRASSROOTS_PASSWORD": platform.password("xingming.secretary"),
        "PYTHONPATH": str(SDK),
    }
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.match(r"reported ev_\w+ in grid cell xingming-g\d+ \(gw-xingming-\d+\)", lines[0])
    assert re.match(r"on the stream at offset \d+: event.reported", lines[1])
    assert re.match(r"task \S+ \w+, offered to users/", lines[2]), lines[2]
    assert "matched" in lines[3] and "safety" in lines[3]
