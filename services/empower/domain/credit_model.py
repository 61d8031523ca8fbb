"""Village credit's nouns: policies, consents, scores, and the one scoring rule.

The rule is declared here once and nowhere else (the proto's CreditPolicy comment
and ADR 37 describe it):

    score = base_score + points_weight * points_earned + deed_weight * deeds

over the policy's window, clamped to 0..MAX_SCORE, then the first band (highest
first) whose min_score the score reaches. Everything is an integer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.kit import tenancy
from services.kit.errors import InvalidArgument

POLICIES = "creditPolicies"
CONSENTS = "creditConsents"
SCORE = "creditScore"
MAX_SCORE = 1000


@dataclass(frozen=True)
class Band:
    band: str
    min_score: int


@dataclass(frozen=True)
class Policy:
    id: str
    tenant: str
    display_name: str
    window_days: int
    base_score: int
    points_weight: int
    deed_weight: int
    bands: tuple[Band, ...]
    create_time: datetime

    @property
    def resource_name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/{POLICIES}/{self.id}"

    def score(self, points_earned: int, deeds: int) -> tuple[int, str]:
        """(score, band) of a ledger that credited `points_earned` in `deeds` entries."""
        raw = self.base_score + self.points_weight * points_earned + self.deed_weight * deeds
        score = max(0, min(MAX_SCORE, raw))
        band = next((b.band for b in self.bands if score >= b.min_score), "")
        return score, band


class ConsentState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Consent:
    id: str
    tenant: str
    household: str  # the points account's resource name
    consumer: str  # the app's resource name
    purpose: str
    expire_time: datetime
    granted_by: str
    request_id: str
    create_time: datetime
    revoke_time: datetime | None = None

    @property
    def resource_name(self) -> str:
        return f"{tenancy.tenant_name(self.tenant)}/{CONSENTS}/{self.id}"

    def state(self, now: datetime) -> ConsentState:
        if self.revoke_time is not None:
            return ConsentState.REVOKED
        if self.expire_time <= now:
            return ConsentState.EXPIRED
        return ConsentState.ACTIVE


@dataclass(frozen=True)
class Score:
    household: str
    display_name: str
    score: int
    band: str
    points_earned: int
    deeds: int
    window_start: datetime
    policy: str
    consent: str
    compute_time: datetime

    @property
    def resource_name(self) -> str:
        return f"{self.household}/{SCORE}"


def parse_score_name(name: str) -> tuple[str, str]:
    """`tenants/{t}/pointsAccounts/{a}/creditScore` -> (tenant path, account id)."""
    account, slash, last = name.rpartition("/")
    if not slash or last != SCORE:
        raise InvalidArgument.field(
            "name", "is not of the form 'tenants/{tenant}/pointsAccounts/{account}/creditScore'"
        )
    tenant, account_id = tenancy.parse_child_name(account, "pointsAccounts")
    if tenant is None:
        raise InvalidArgument.field("name", "name the household's tenant, not '-'")
    return tenant, account_id


def parse_named(name: str, collection: str, field: str = "name") -> tuple[str, str]:
    """`tenants/{t}/{collection}/{id}` -> (tenant path, id); the wildcard is refused."""
    tenant, found = tenancy.parse_child_name(name, collection, field)
    if tenant is None:
        raise InvalidArgument.field(field, "name one tenant, not the wildcard '-'")
    return tenant, found
