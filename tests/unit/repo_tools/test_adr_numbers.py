"""Decision records keep one number each: two people writing ADRs at once must notice."""

from __future__ import annotations

import re
from pathlib import Path

ADR = Path(__file__).resolve().parents[3] / "docs" / "adr"
NAME = re.compile(r"^(\d{4})-[a-z0-9-]+\.md$")


def test_every_record_has_its_own_number_and_its_title_says_it():
    records = sorted(ADR.glob("*.md"))
    assert len(records) >= 29
    numbers = []
    for path in records:
        match = NAME.match(path.name)
        assert match, f"{path.name}: name it NNNN-short-title.md"
        number = int(match.group(1))
        numbers.append(number)
        title = path.read_text(encoding="utf-8").splitlines()[0]
        assert title.startswith(f"# {number}. "), f"{path.name}: title {title!r}"
    assert numbers == list(range(1, len(numbers) + 1)), "numbers repeat or skip"
