"""A small AIP-160 subset: conjunctions of `field = "value"`.

Enough for list methods to filter on indexed columns; anything richer is refused
with INVALID_ARGUMENT naming `filter`, rather than silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from services.kit.errors import InvalidArgument

_TERM = re.compile(r'^\s*([a-z_][a-z0-9_.]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*$')


def parse_equalities(expression: str, allowed: Collection[str]) -> dict[str, str]:
    """Parse `a = "x" AND b = "y"` into {"a": "x", "b": "y"}."""
    result: dict[str, str] = {}
    if not expression.strip():
        return result
    for term in re.split(r"\s+AND\s+", expression.strip()):
        match = _TERM.match(term)
        if not match:
            raise InvalidArgument.field(
                "filter", f'cannot parse {term!r}; expected field = "value" joined by AND'
            )
        name, value = match.group(1), match.group(2).replace('\\"', '"').replace("\\\\", "\\")
        if name not in allowed:
            raise InvalidArgument.field(
                "filter", f"cannot filter on {name!r}; allowed: {', '.join(sorted(allowed))}"
            )
        if name in result:
            raise InvalidArgument.field("filter", f"{name!r} appears twice")
        result[name] = value
    return result
