"""The points ledger's nouns: accounts, rules, entries, facts, and their resource names.

Amounts are whole points held in Python ints (int64 on the wire and in the stores):
never floats, so sums are exact however many entries an account has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from services.kit import tenancy
from services.kit.errors import InvalidArgument

ACCOUNTS = "pointsAccounts"
RULES = "pointsRules"
ENTRIES = "ledgerEntries"


class HolderKind(StrEnum):
    HOUSEHOLD = "household"
    PERSON = "person"


class Period(StrEnum):
    NONE = ""
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class EntryKind(StrEnum):
    RULE_CREDIT = "rule_credit"
    MANUAL_CREDIT = "manual_credit"
    REDEMPTION = "redemption"


@dataclass(frozen=True)
class Account:
    id: str
    tenant: str
    holder_kind: HolderKind
    holder: str
    display_name: str
    balance: int
    create_time: datetime

    @property
    def resource_name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/{ACCOUNTS}/{self.id}"


@dataclass(frozen=True)
class Rule:
    id: str
    tenant: str
    display_name: str
    fact_type: str
    match: Mapping[str, str]
    points: int
    cap: int
    cap_period: Period
    create_time: datetime

    @property
    def resource_name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/{RULES}/{self.id}"

    def matches(self, fact: Fact) -> bool:
        """Same type, and every attribute the rule names carries the rule's value."""
        return self.fact_type == fact.type and all(
            fact.attributes.get(key) == value for key, value in self.match.items()
        )


@dataclass(frozen=True)
class Entry:
    sequence: int
    tenant: str
    account_id: str
    kind: EntryKind
    amount: int
    balance_after: int
    idempotency_key: str
    rule_id: str
    memo: str
    actor: str
    create_time: datetime

    @property
    def resource_name(self) -> str:
        return (
            f"{tenancy.tenant_name(self.tenant)}/{ACCOUNTS}/{self.account_id}/"
            f"{ENTRIES}/{self.sequence}"
        )


@dataclass(frozen=True)
class Posting:
    """An entry the ledger asks a store to write, before the store knows the balance.

    `requested` is the rule's points, the award or the redemption (positive); the
    store calls `settle` under the account's lock to turn it into the entry's amount.
    `cap_since` is where the cap's period began (None: no cap).
    """

    tenant: str
    account_id: str
    kind: EntryKind
    requested: int
    idempotency_key: str
    rule_id: str
    memo: str
    actor: str
    time: datetime
    cap: int = 0
    cap_since: datetime | None = None


@dataclass(frozen=True)
class Fact:
    """Something that happened, as the points rules see it: a bus message decoded."""

    type: str
    key: str
    tenant: str
    holder: str
    holder_kind: HolderKind = HolderKind.PERSON
    attributes: Mapping[str, str] = field(default_factory=dict)
    subject: str = ""


@dataclass(frozen=True)
class Posted:
    """What a posting became; `created` is False when its key had been posted before."""

    entry: Entry
    created: bool


def parse_account_name(name: str, field: str = "name") -> tuple[str, str]:
    """`tenants/{tenant}/pointsAccounts/{id}` -> (tenant path, account id)."""
    tenant, account_id = tenancy.parse_child_name(name, ACCOUNTS, field)
    if tenant is None:
        raise InvalidArgument.field(field, "name the account's tenant, not '-'")
    return tenant, account_id
