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


def sample_output() -> list[str]:
    section = DOC.read_text().split("It prints something like:", 1)[1]
    found = re.search(r"```\n(.*?)```", section, re.S)
    assert found, "docs/sdk.md's tutorial shows no output"
    return found.group(1).splitlines()


# What the script prints, line by line; the doc's sample and a real run both match.
PRINTED = (
    r"reported ev_\w+(\.\.\.)? in grid cell xingming-g\d+ \(gw-xingming-\d+\)",
    r"on the stream at offset \d+: event.reported",
    r"task task_\w+(\.\.\.)? \w+, offered to users/",
)


def test_the_tutorial_is_30_lines() -> None:
    assert len(tutorial().strip().splitlines()) <= 30


def test_the_sample_output_is_what_the_script_prints() -> None:
    lines = sample_output()
    for pattern, line in zip(PRINTED, lines, strict=False):
        assert re.match(pattern, line), line
    assert "matched" in lines[3] and "safety" in lines[3]


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
    for pattern, line in zip(PRINTED, lines, strict=False):
        assert re.match(pattern, line), line
    assert "matched" in lines[3] and "safety" in lines[3]
