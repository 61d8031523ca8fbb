"""Python's `$` also matches before a final newline, so `re.compile(r"^[a-z]+$")` takes
"admin\n" as a valid name, and the newline reaches a store, a log line or a header. The
platform's checks anchor the end with `\\Z` (or use fullmatch); this holds them to it,
and shows the difference on one of them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from services.empower.domain import identity
from services.twin.mqtt_bridge import payload

ROOT = Path(__file__).resolve().parents[3]
# A compiled pattern that ends its text with `$`: re.compile(r"...$") or (r"...$", flags).
ENDS_WITH_DOLLAR = re.compile(r're\.compile\(r?"[^"\n]*\$"\s*[,)]')


def _shipped_python() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in listed if not name.startswith(("tests/", "bench/"))]


def test_no_shipped_pattern_ends_with_a_dollar_that_lets_a_newline_through():
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _shipped_python()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ENDS_WITH_DOLLAR.search(line)
    ]
    assert not found, f"end these patterns with \\Z: {found}"


def test_a_trailing_newline_is_not_a_name():
    assert identity._USERNAME.match("grid.worker")
    assert not identity._USERNAME.match("grid.worker\n")
    assert payload._ATTRIBUTE.match("temperature")
    assert not payload._ATTRIBUTE.match("temperature\n")
