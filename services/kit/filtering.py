"""A small AIP-160 subset: conjunctions of comparisons with quoted values.

`field = "value"`, `field >= "value"` (also >, <=, <, !=) and `field : "word"` (has),
joined by AND. Enough for list methods to filter on indexed columns; anything richer
is refused with INVALID_ARGUMENT naming `filter`, rather than silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from services.kit.errors import InvalidArgument

_TERM = re.compile(r'^\s*([a-z_][a-z0-9_.]*)\s*(>=|<=|!=|=|>|<|:)\s*"((?:[^"\\]|\\.)*)"\s*$')
OPERATORS = frozenset({"=", "!=", ">", ">=", "<", "<=", ":"})


@dataclass(frozen=True)
class Term:
    field: str
    op: str
    value: str


def quote(value: str) -> str:
    """A value as the inside of a quoted filter term (the inverse of parsing)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def parse_terms(expression: str, allowed: Mapping[str, Collection[str]]) -> list[Term]:
    """Parse a conjunction; `allowed` maps each field to the operators it accepts."""
    terms: list[Term] = []
    if not expression.strip():
        return terms
    for text in re.split(r"\s+AND\s+", expression.strip()):
        match = _TERM.match(text)
        if not match:
            raise InvalidArgument.field(
                "filter", f'cannot parse {text!r}; expected field = "value" joined by AND'
            )
        name, op = match.group(1), match.group(2)
        value = match.group(3).replace('\\"', '"').replace("\\\\", "\\")
        if name not in allowed:
            raise InvalidArgument.field(
                "filter", f"cannot filter on {name!r}; allowed: {', '.join(sorted(allowed))}"
            )
        if op not in allowed[name]:
            raise InvalidArgument.field(
                "filter", f"{name!r} takes {', '.join(sorted(allowed[name]))}, not {op!r}"
            )
        terms.append(Term(name, op, value))
    return terms


def parse_equalities(expression: str, allowed: Collection[str]) -> dict[str, str]:
    """Parse `a = "x" AND b = "y"` into {"a": "x", "b": "y"}."""
    result: dict[str, str] = {}
    for term in parse_terms(expression, {name: ("=",) for name in allowed}):
        if term.field in result:
            raise InvalidArgument.field("filter", f"{term.field!r} appears twice")
        result[term.field] = term.value
    return result
