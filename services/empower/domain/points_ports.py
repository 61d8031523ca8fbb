"""What the points ledger needs from storage.

Every method takes the tenant `subtree` its unit of work is limited to (a tenant path,
or ALL_TENANTS for facts from the bus); stores filter by it in SQL and PostgreSQL
repeats the filter with row-level security.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from services.empower.domain.points_model import Account, Entry, Posted, Posting, Rule

# Under the account's lock: (posting, balance, points this rule already paid in the
# cap's period) -> (amount to write, memo). Raises to refuse (e.g. an overdraw).
Settle = Callable[[Posting, int, int], tuple[int, str]]


class PointsStore(Protocol):
    async def open_account(self, subtree: str, account: Account) -> Account:
        """Insert the account; when its holder already has one in its tenant, return that."""
        ...

    async def get_account(self, subtree: str, account_id: str) -> Account | None:
        """The account if it lies in `subtree`."""
        ...

    async def list_accounts(
        self, subtree: str, holder: str, limit: int, after_id: str | None
    ) -> list[Account]:
        """Accounts in the subtree (of one holder when `holder`), by id, after `after_id`."""
        ...

    async def insert_rule(self, subtree: str, rule: Rule) -> None: ...

    async def delete_rule(self, subtree: str, tenant: str, rule_id: str) -> bool:
        """False when the tenant has no such rule (in the subtree)."""
        ...

    async def rules_of(self, subtree: str, tenants: Sequence[str]) -> list[Rule]:
        """Rules whose tenant is one of `tenants`, oldest first."""
        ...

    async def post(self, subtree: str, posting: Posting, settle: Settle) -> Posted:
        """Write one entry and move the balance, atomically and once per key.

        Under the account's lock: an entry with the posting's key in its tenant is
        returned as it is (created False); otherwise `settle` decides the amount and
        the entry and the new balance are written in one transaction. NOT_FOUND when
        the account is not in `subtree`.
        """
        ...

    async def list_entries(
        self, subtree: str, account_id: str, limit: int, before_sequence: int | None
    ) -> list[Entry]:
        """The account's entries, newest first."""
        ...

    async def entries_total(self, subtree: str, account_id: str) -> int:
        """The sum of the account's entries, computed from the ledger itself."""
        ...
