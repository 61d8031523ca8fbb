"""The two SQL dialects the stores speak, so statements are written once.

Statements shared by a service's SQLite and PostgreSQL stores are written with `?`
placeholders and `{like}` for a case-insensitive match; each store renders them
for its backend. SQLite's LIKE ignores ASCII case and ILIKE is PostgreSQL's match.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    placeholder: str
    like: str

    def render(self, statement: str) -> str:
        """The statement with this dialect's placeholder and case-insensitive match."""
        return statement.replace("?", self.placeholder).replace("{like}", self.like)

    def marks(self, count: int) -> str:
        """`count` placeholders separated by commas, for VALUES lists."""
        return ", ".join([self.placeholder] * count)


SQLITE = Dialect(placeholder="?", like="LIKE")
POSTGRES = Dialect(placeholder="%s", like="ILIKE")


def in_subtree(subtree: str, column: str = "tenant") -> tuple[str, list[str]]:
    """ "column is subtree or below it" with `?` marks, as a range an index can scan ('/'
    sorts just before '0'); every row for ALL_TENANTS ("*")."""
    if subtree == "*":
        return "1 = 1", []
    return f"({column} = ? OR ({column} >= ? AND {column} < ?))", [
        subtree,
        subtree + "/",
        subtree + "0",
    ]
