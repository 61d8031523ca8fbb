"""What village credit needs from storage and from the rest of empower.

Every store method takes the tenant `subtree` its unit of work is limited to; stores
filter by it in SQL and PostgreSQL repeats the filter with row-level security.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.empower.domain.credit_model import Consent, Policy


class CreditStore(Protocol):
    async def insert_policy(self, subtree: str, policy: Policy) -> tuple[Policy, bool]:
        """Insert the policy unless its tenant holds one; (the tenant's policy, inserted)."""
        ...

    async def get_policy(self, subtree: str, tenant: str, policy_id: str) -> Policy | None: ...

    async def policies_of(self, subtree: str, tenants: Sequence[str]) -> list[Policy]:
        """The policies of `tenants` (at most one each)."""
        ...

    async def delete_policy(self, subtree: str, tenant: str, policy_id: str) -> bool:
        """False when the tenant has no such policy (in the subtree)."""
        ...

    async def insert_consent(self, subtree: str, consent: Consent) -> Consent:
        """Insert; when the tenant has a consent with its request_id, return that one."""
        ...

    async def get_consent(self, subtree: str, consent_id: str) -> Consent | None: ...

    async def list_consents(
        self,
        subtree: str,
        household: str,
        consumer: str,
        limit: int,
        after_id: str | None,
    ) -> list[Consent]:
        """Consents in the subtree (filtered when `household`/`consumer`), by id."""
        ...

    async def revoke_consent(self, subtree: str, consent_id: str, at: datetime) -> Consent | None:
        """Set the revoke time unless set; the consent as it is after, None if not found."""
        ...

    async def consent_in_force(
        self, subtree: str, household: str, consumer: str, purpose: str, now: datetime
    ) -> Consent | None:
        """An unrevoked consent for this household, consumer and purpose expiring after
        `now` (the latest-expiring one), or None."""
        ...


class LedgerSummary(Protocol):
    async def credited_since(
        self, subtree: str, account_id: str, since: datetime
    ) -> tuple[int, int]:
        """(points credited, entries that credited points) of an account since `since`."""
        ...


class ConsumerApps(Protocol):
    async def app_exists(self, tenant: str, app_id: str) -> bool:
        """Whether `tenants/{tenant}/apps/{app_id}` is a registered app."""
        ...
