"""A small AIP-160 subset: conjunctions of comparisons with quoted values.

`field = "value"`, `field >= "value"` (also >, <=, <, !=) and `field : "word"` (has),
joined by AND. Enough for list methods to filter on indexed columns; anything richer
is refused with INVALID_ARGUMENT naming `filter`, rather than silently ignored.

The expression is scanned term by term from left to right, so a quoted value is taken
literally whatever it holds (`q : "salt AND pepper"` is one term), and only an AND
between terms joins them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from services.kit.errors import InvalidArgument

_TERM = re.compile(r'\s*([a-z_][a-z0-9_.]*)\s*(>=|<=|!=|=|>|<|:)\s*"((?:[^"\\]|\\.)*)"', re.DOTALL)
_AND = re.compile(r"\s+AND\s+")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
OPERATORS = frozenset({"=", "!=", ">", ">=", "<", "<=", ":"})


@dataclass(frozen=True)
class Term:
    field: str
    op: str
    value: str


def quote(value: str) -> str:
    """A value as the inside of a quoted filter term (the inverse of parsing)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _unquote(inside: str) -> str:
    """Undo `quote`: \\" and \\\\ stand for " and \\; any other backslash stays as sent."""
    return _ESCAPE.sub(lambda m: m.group(1) if m.group(1) in '"\\' else m.group(0), inside)


def _scan(expression: str) -> list[tuple[str, str, str]]:
    """(field, operator, value) of each term; a gap that is not AND is refused."""
    found: list[tuple[str, str, str]] = []
    position = 0
    while True:
        match = _TERM.match(expression, position)
        if match is None:
            rest = expression[position:].strip()
            raise InvalidArgument.field(
                "filter",
                f'cannot parse {rest[:80]!r}; expected field = "value" joined by AND',
            )
        found.append((match.group(1), match.group(2), _unquote(match.group(3))))
        position = match.end()
        if not expression[position:].strip():
            return found
        joined = _AND.match(expression, position)
        if joined is None:
            rest = expression[position:].strip()
            raise InvalidArgument.field(
                "filter", f"cannot parse {rest[:80]!r}; terms are joined by AND only"
            )
        position = joined.end()


def parse_terms(expression: str, allowed: Mapping[str, Collection[str]]) -> list[Term]:
    """Parse a conjunction; `allowed` maps each field to the operators it accepts."""
    if not expression.strip():
        return []
    terms: list[Term] = []
    for name, op, value in _scan(expression):
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
